//! Deriving relationships from foreign keys: direct (many-to-one, one-to-many, one-to-one),
//! through views that expose the key columns, and many-to-many through junction tables whose
//! primary key covers both foreign keys.

use std::collections::{HashMap, HashSet};

use super::catalog::{CatalogForeignKey, CatalogKey, ViewColumnOrigin};
use super::model::{Cardinality, Junction, Relation, Relationship};
use crate::ident::Ident;

/// Chains of views over views are followed this deep.
const MAX_VIEW_DEPTH: usize = 16;

/// A relation that shows some columns of a base table: the table itself, or a view.
struct Face<'a> {
    relation: &'a Relation,
    /// Names of the face's columns, in the order of the requested base columns.
    columns: Vec<Ident>,
}

/// Inputs for relationship derivation.
pub(crate) struct Derivation<'a> {
    /// Exposed relations by oid.
    pub(crate) relations: &'a HashMap<u32, Relation>,
    /// Foreign keys of all user tables.
    pub(crate) foreign_keys: &'a [CatalogForeignKey],
    /// Primary and unique keys of all user tables.
    pub(crate) keys: &'a [CatalogKey],
    /// Where view columns come from, resolved to base tables.
    pub(crate) lineage: &'a HashMap<(u32, i16), (u32, i16)>,
}

/// Resolves each view column to the base table column it shows, following views of views.
pub(crate) fn resolve_lineage(origins: &[ViewColumnOrigin]) -> HashMap<(u32, i16), (u32, i16)> {
    let direct: HashMap<(u32, i16), (u32, i16)> = origins
        .iter()
        .map(|o| ((o.view_oid, o.view_column), (o.source_oid, o.source_column)))
        .collect();
    direct
        .keys()
        .map(|&start| {
            let mut current = direct[&start];
            for _ in 0..MAX_VIEW_DEPTH {
                match direct.get(&current) {
                    Some(&next) => current = next,
                    None => break,
                }
            }
            (start, current)
        })
        .collect()
}

impl Derivation<'_> {
    /// Every relationship between exposed relations.
    pub(crate) fn relationships(&self) -> Vec<Relationship> {
        let mut out = Vec::new();
        for fk in self.foreign_keys {
            let one_to_one = self.is_unique(fk.rel_oid, &fk.column_nums);
            let sources = self.faces(fk.rel_oid, &fk.column_nums);
            let targets = self.faces(fk.ref_oid, &fk.ref_column_nums);
            for source in &sources {
                for target in &targets {
                    let pairs: Vec<(Ident, Ident)> = source
                        .columns
                        .iter()
                        .cloned()
                        .zip(target.columns.iter().cloned())
                        .collect();
                    let forward = if one_to_one {
                        Cardinality::OneToOne
                    } else {
                        Cardinality::ManyToOne
                    };
                    let backward = if one_to_one {
                        Cardinality::OneToOne
                    } else {
                        Cardinality::OneToMany
                    };
                    out.push(Relationship {
                        source: source.relation.qualified.clone(),
                        target: target.relation.qualified.clone(),
                        cardinality: forward,
                        constraint: fk.name.clone(),
                        columns: pairs.clone(),
                        junction: None,
                        forward: true,
                    });
                    out.push(Relationship {
                        source: target.relation.qualified.clone(),
                        target: source.relation.qualified.clone(),
                        cardinality: backward,
                        constraint: fk.name.clone(),
                        columns: pairs.into_iter().map(|(a, b)| (b, a)).collect(),
                        junction: None,
                        forward: false,
                    });
                }
            }
        }
        out.extend(self.many_to_many());
        out
    }

    fn many_to_many(&self) -> Vec<Relationship> {
        let mut out = Vec::new();
        for junction in self.relations.values().filter(|r| !r.kind.is_view()) {
            let Some(pk) = self.primary_key_nums(junction.oid) else {
                continue;
            };
            let fks: Vec<&CatalogForeignKey> = self
                .foreign_keys
                .iter()
                .filter(|fk| fk.rel_oid == junction.oid)
                .filter(|fk| fk.column_nums.iter().all(|num| pk.contains(num)))
                .collect();
            for left in &fks {
                for right in &fks {
                    if left.name == right.name {
                        continue;
                    }
                    let junction_cols = |fk: &CatalogForeignKey| -> Vec<Ident> {
                        fk.columns
                            .iter()
                            .map(|c| Ident::from_catalog(c.clone()))
                            .collect()
                    };
                    for source in self.faces(left.ref_oid, &left.ref_column_nums) {
                        for target in self.faces(right.ref_oid, &right.ref_column_nums) {
                            out.push(Relationship {
                                source: source.relation.qualified.clone(),
                                target: target.relation.qualified.clone(),
                                cardinality: Cardinality::ManyToMany,
                                constraint: junction.qualified.name.as_str().to_owned(),
                                columns: Vec::new(),
                                junction: Some(Junction {
                                    relation: junction.qualified.clone(),
                                    source_constraint: left.name.clone(),
                                    target_constraint: right.name.clone(),
                                    source_columns: junction_cols(left)
                                        .into_iter()
                                        .zip(source.columns.iter().cloned())
                                        .collect(),
                                    target_columns: junction_cols(right)
                                        .into_iter()
                                        .zip(target.columns.iter().cloned())
                                        .collect(),
                                }),
                                forward: false,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The exposed relations showing all of `columns` of base table `base_oid`.
    fn faces(&self, base_oid: u32, columns: &[i16]) -> Vec<Face<'_>> {
        let mut faces = Vec::new();
        if let Some(relation) = self.relations.get(&base_oid) {
            let names = columns
                .iter()
                .map(|&num| {
                    relation
                        .columns
                        .iter()
                        .find(|c| c.attnum == num)
                        .map(|c| c.name.clone())
                })
                .collect::<Option<Vec<_>>>();
            if let Some(names) = names {
                faces.push(Face {
                    relation,
                    columns: names,
                });
            }
        }
        let mut views: Vec<&Relation> = self
            .relations
            .values()
            .filter(|relation| relation.kind.is_view())
            .collect();
        views.sort_by(|a, b| a.qualified.cmp(&b.qualified));
        for view in views {
            let names = columns
                .iter()
                .map(|&num| {
                    view.columns.iter().find_map(|column| {
                        (self.lineage.get(&(view.oid, column.attnum)) == Some(&(base_oid, num)))
                            .then(|| column.name.clone())
                    })
                })
                .collect::<Option<Vec<_>>>();
            if let Some(names) = names {
                faces.push(Face {
                    relation: view,
                    columns: names,
                });
            }
        }
        faces
    }

    fn primary_key_nums(&self, oid: u32) -> Option<HashSet<i16>> {
        self.keys
            .iter()
            .find(|key| key.rel_oid == oid && key.kind == "p")
            .map(|key| key.column_nums.iter().copied().collect())
    }

    /// True when `columns` of `oid` are exactly a primary or unique key.
    fn is_unique(&self, oid: u32, columns: &[i16]) -> bool {
        let wanted: HashSet<i16> = columns.iter().copied().collect();
        self.keys
            .iter()
            .filter(|key| key.rel_oid == oid)
            .any(|key| key.column_nums.iter().copied().collect::<HashSet<_>>() == wanted)
    }
}

/// Primary keys of views: the base table's key when the view shows all of its columns.
pub(crate) fn view_primary_key(
    view: &Relation,
    keys: &[CatalogKey],
    lineage: &HashMap<(u32, i16), (u32, i16)>,
) -> Vec<String> {
    let origins: Vec<(String, (u32, i16))> = view
        .columns
        .iter()
        .filter_map(|column| {
            let origin = lineage.get(&(view.oid, column.attnum))?;
            Some((column.name.as_str().to_owned(), *origin))
        })
        .collect();
    for key in keys.iter().filter(|key| key.kind == "p") {
        let names: Option<Vec<String>> = key
            .column_nums
            .iter()
            .map(|num| {
                origins
                    .iter()
                    .find(|(_, origin)| *origin == (key.rel_oid, *num))
                    .map(|(name, _)| name.clone())
            })
            .collect();
        if let Some(names) = names {
            return names;
        }
    }
    Vec::new()
}
