//! A pure decoder for the `pgoutput` messages of protocol version 1 (with `messages` on).
//! Input comes from the network, so every read is checked and every failure is a typed error.

use bytes::Bytes;

/// Why a message could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// The message ended before a field.
    #[error("pgoutput message truncated")]
    Truncated,
    /// A tag byte we do not know.
    #[error("unknown pgoutput message tag {0:#04x}")]
    UnknownTag(u8),
    /// A tuple column kind other than n/u/t/b.
    #[error("unknown tuple column kind {0:#04x}")]
    UnknownColumnKind(u8),
    /// A name that is not UTF-8.
    #[error("pgoutput text is not UTF-8")]
    Utf8,
}

/// One column of a tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cell {
    /// SQL NULL.
    Null,
    /// An unchanged TOASTed value the WAL did not carry.
    Unchanged,
    /// The type's text output.
    Text(Bytes),
}

/// A column of a relation message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelationColumn {
    /// Part of the replica identity (the key).
    pub(crate) is_key: bool,
    pub(crate) name: String,
    pub(crate) type_oid: u32,
}

/// A decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PgOutput {
    Begin {
        final_lsn: u64,
        /// Microseconds since 2000-01-01 UTC.
        commit_time: i64,
    },
    Commit {
        commit_lsn: u64,
        end_lsn: u64,
        commit_time: i64,
    },
    Relation {
        id: u32,
        schema: String,
        name: String,
        /// `d`efault, `n`othing, `f`ull or `i`ndex.
        replica_identity: u8,
        columns: Vec<RelationColumn>,
    },
    Insert {
        relation: u32,
        new: Vec<Cell>,
    },
    Update {
        relation: u32,
        /// The old key (`K`) or full old row (`O`), when the WAL carries one.
        old: Option<Vec<Cell>>,
        new: Vec<Cell>,
    },
    Delete {
        relation: u32,
        old: Vec<Cell>,
    },
    Truncate {
        relations: Vec<u32>,
    },
    Message {
        transactional: bool,
        lsn: u64,
        prefix: String,
        content: Bytes,
    },
    /// Origin and type messages carry nothing we use.
    Ignored,
}

struct Reader {
    data: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, count: usize) -> Result<Bytes, DecodeError> {
        let end = self.at.checked_add(count).ok_or(DecodeError::Truncated)?;
        if end > self.data.len() {
            return Err(DecodeError::Truncated);
        }
        let slice = self.data.slice(self.at..end);
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.data.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes);
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn cstring(&mut self) -> Result<String, DecodeError> {
        let rest = self.data.get(self.at..).ok_or(DecodeError::Truncated)?;
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Truncated)?;
        let text = std::str::from_utf8(&rest[..nul]).map_err(|_| DecodeError::Utf8)?;
        let text = text.to_owned();
        self.at += nul + 1;
        Ok(text)
    }

    fn tuple(&mut self) -> Result<Vec<Cell>, DecodeError> {
        let count = usize::from(self.u16()?);
        let mut cells = Vec::with_capacity(count);
        for _ in 0..count {
            let cell = match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' | b'b' => {
                    let length = self.u32()? as usize;
                    Cell::Text(self.take(length)?)
                }
                other => return Err(DecodeError::UnknownColumnKind(other)),
            };
            cells.push(cell);
        }
        Ok(cells)
    }
}

/// Decodes one XLogData payload.
pub(crate) fn decode(data: Bytes) -> Result<PgOutput, DecodeError> {
    let mut reader = Reader { data, at: 0 };
    let message = match reader.u8()? {
        b'B' => {
            let final_lsn = reader.u64()?;
            let commit_time = reader.i64()?;
            let _xid = reader.u32()?;
            PgOutput::Begin {
                final_lsn,
                commit_time,
            }
        }
        b'C' => {
            let _flags = reader.u8()?;
            PgOutput::Commit {
                commit_lsn: reader.u64()?,
                end_lsn: reader.u64()?,
                commit_time: reader.i64()?,
            }
        }
        b'R' => {
            let id = reader.u32()?;
            let schema = reader.cstring()?;
            let name = reader.cstring()?;
            let replica_identity = reader.u8()?;
            let count = usize::from(reader.u16()?);
            let mut columns = Vec::with_capacity(count.min(1600));
            for _ in 0..count {
                let flags = reader.u8()?;
                let column_name = reader.cstring()?;
                let type_oid = reader.u32()?;
                let _typmod = reader.u32()?;
                columns.push(RelationColumn {
                    is_key: flags & 1 == 1,
                    name: column_name,
                    type_oid,
                });
            }
            PgOutput::Relation {
                id,
                schema,
                name,
                replica_identity,
                columns,
            }
        }
        b'I' => {
            let relation = reader.u32()?;
            match reader.u8()? {
                b'N' => PgOutput::Insert {
                    relation,
                    new: reader.tuple()?,
                },
                other => return Err(DecodeError::UnknownTag(other)),
            }
        }
        b'U' => {
            let relation = reader.u32()?;
            let mut old = None;
            let mut tag = reader.u8()?;
            if tag == b'K' || tag == b'O' {
                old = Some(reader.tuple()?);
                tag = reader.u8()?;
            }
            if tag != b'N' {
                return Err(DecodeError::UnknownTag(tag));
            }
            PgOutput::Update {
                relation,
                old,
                new: reader.tuple()?,
            }
        }
        b'D' => {
            let relation = reader.u32()?;
            match reader.u8()? {
                b'K' | b'O' => PgOutput::Delete {
                    relation,
                    old: reader.tuple()?,
                },
                other => return Err(DecodeError::UnknownTag(other)),
            }
        }
        b'T' => {
            let count = reader.u32()? as usize;
            let _options = reader.u8()?;
            let mut relations = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                relations.push(reader.u32()?);
            }
            PgOutput::Truncate { relations }
        }
        b'M' => {
            let flags = reader.u8()?;
            let lsn = reader.u64()?;
            let prefix = reader.cstring()?;
            let length = reader.u32()? as usize;
            PgOutput::Message {
                transactional: flags & 1 == 1,
                lsn,
                prefix,
                content: reader.take(length)?,
            }
        }
        b'O' | b'Y' => PgOutput::Ignored,
        other => return Err(DecodeError::UnknownTag(other)),
    };
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relation_fixture() -> Vec<u8> {
        let mut bytes = vec![b'R'];
        bytes.extend_from_slice(&16385u32.to_be_bytes());
        bytes.extend_from_slice(b"public\0items\0");
        bytes.push(b'f');
        bytes.extend_from_slice(&2u16.to_be_bytes());
        bytes.push(1);
        bytes.extend_from_slice(b"id\0");
        bytes.extend_from_slice(&20u32.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        bytes.push(0);
        bytes.extend_from_slice(b"name\0");
        bytes.extend_from_slice(&25u32.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        bytes
    }

    #[test]
    fn relation_and_update_with_old_row() {
        let message = decode(Bytes::from(relation_fixture())).unwrap();
        let PgOutput::Relation { columns, name, .. } = message else {
            panic!("relation")
        };
        assert_eq!(name, "items");
        assert!(columns[0].is_key && !columns[1].is_key);
        assert_eq!(columns[1].type_oid, 25);

        let mut bytes = vec![b'U'];
        bytes.extend_from_slice(&16385u32.to_be_bytes());
        bytes.push(b'O');
        bytes.extend_from_slice(&2u16.to_be_bytes());
        bytes.extend_from_slice(b"t\0\0\0\x015n");
        bytes.push(b'N');
        bytes.extend_from_slice(&2u16.to_be_bytes());
        bytes.extend_from_slice(b"t\0\0\0\x015u");
        let PgOutput::Update { old, new, .. } = decode(Bytes::from(bytes)).unwrap() else {
            panic!("update")
        };
        assert_eq!(
            old.unwrap(),
            vec![Cell::Text(Bytes::from_static(b"5")), Cell::Null]
        );
        assert_eq!(new[1], Cell::Unchanged);
    }

    #[test]
    fn every_prefix_of_a_message_is_an_error_not_a_panic() {
        let full = relation_fixture();
        for end in 0..full.len() {
            assert!(decode(Bytes::copy_from_slice(&full[..end])).is_err());
        }
        assert_eq!(
            decode(Bytes::from_static(b"Z")),
            Err(DecodeError::UnknownTag(b'Z'))
        );
        // A huge declared text length must not allocate or panic.
        let mut bytes = vec![b'I'];
        bytes.extend_from_slice(&1u32.to_be_bytes());
        bytes.push(b'N');
        bytes.extend_from_slice(&1u16.to_be_bytes());
        bytes.push(b't');
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(Bytes::from(bytes)), Err(DecodeError::Truncated));
    }

    #[test]
    fn begin_commit_and_message() {
        let mut bytes = vec![b'C', 0];
        bytes.extend_from_slice(&10u64.to_be_bytes());
        bytes.extend_from_slice(&20u64.to_be_bytes());
        bytes.extend_from_slice(&30i64.to_be_bytes());
        assert_eq!(
            decode(Bytes::from(bytes)).unwrap(),
            PgOutput::Commit {
                commit_lsn: 10,
                end_lsn: 20,
                commit_time: 30
            }
        );
        let mut bytes = vec![b'M', 0];
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(b"p\0");
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(b"hi");
        let PgOutput::Message {
            transactional,
            lsn,
            prefix,
            content,
        } = decode(Bytes::from(bytes)).unwrap()
        else {
            panic!("message")
        };
        assert!(!transactional);
        assert_eq!((lsn, prefix.as_str(), &content[..]), (7, "p", &b"hi"[..]));
    }
}
