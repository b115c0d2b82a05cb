// Tenant isolation matrix of the gas-cylinder domain (issue 6, acceptance 2), tables and views,
// driven through the real supabase-js. The callers are A's six roles plus two outsiders (anon,
// and a signed-in user without an organization); B's roles read too. For every domain table and
// view under /rest/v1 and every verb (select, insert, update, upsert, delete):
//   - a caller of A reaches nothing of B: empty results or a refusal, and a service_role read-back
//     shows B's rows unchanged;
//   - each role does exactly what DOMAIN.md §9 grants: the allowed roles succeed (read-back shows
//     the change), the others are refused (403, or no row affected where only a policy stands in
//     the way) and the read-back shows nothing changed.
// TABLES below is the matrix; the loops derive every expected outcome from it. The RPCs are in
// domain-isolation-rpc.test.mjs; callers and helpers in domain-isolation.mjs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { NO_ORG_USER, ORG, ROLES, ok, unique, userId } from './domain.mjs';
import {
  A_CALLERS, A_MEMBERS, ANON, BILLING, B_MEMBERS, CYLINDER_WRITERS, FK_VIOLATION, NO_ORG, OFFICE, OWNER_ADMIN, assertRefused,
  assertRows, db, denied, exposed, ids, mine, ownDelivery, pick, profileOf, setUpSuite, svcInsert, svcOne, svcRows, today,
} from './domain-isolation.mjs';

const REGIMES = ['US_DOT', 'TC_CA', 'ADR_EU', 'OTHER'];

before(setUpSuite);

after(async () => {
  // The organization test cycles A's regulatory regime and probes its settings; put both back.
  if (!ids.a) return;
  const { isolation_probe: _probe, ...settings } = (await svcOne('organizations', { id: ORG.a }, 'settings')).settings;
  ok(await db.from('organizations').update({ regulatory_regime: 'US_DOT', settings }).eq('id', ORG.a));
});

const anyone = () => true;
const roleIn = (roles) => (_row, w) => roles.includes(w.role);
const driverAssigned = (row, w) => w.role !== 'driver' || row.driver_id === w.uid;
const driverStop = (row, w) => w.role !== 'driver' || w.deliveries.has(row.delivery_id);
const driverScan = (row, w) => w.role !== 'driver' || row.actor_user_id === w.uid || w.deliveries.has(row.delivery_id);
const BOTTLE_INSERT = ['id', 'bottle_type_id', 'serial_number', 'barcode_number', 'rfid_tag', 'product_code',
  'description', 'size', 'type', 'gas_type', 'status', 'fill_state', 'current_location_id', 'current_customer_id',
  'location', 'last_inspection_date', 'next_inspection_date', 'purchase_date', 'purchase_price', 'current_value',
  'condition', 'notes', 'images', 'spec', 'service_pressure', 'pressure_unit', 'material', 'water_capacity_l',
  'tare_weight_kg', 'manufacturer', 'manufacture_date', 'valve_outlet', 'star_eligible', 'end_of_life_date',
  'ownership', 'owner_customer_id'];
const BOTTLE_UPDATE = ['bottle_type_id', 'serial_number', 'description', 'size', 'gas_type', 'location',
  'purchase_date', 'purchase_price', 'current_value', 'condition', 'notes', 'images', 'spec', 'service_pressure',
  'pressure_unit', 'material', 'water_capacity_l', 'tare_weight_kg', 'manufacturer', 'manufacture_date',
  'valve_outlet', 'star_eligible', 'end_of_life_date'];

const firstKey = async (table, org, column = 'id') =>
  (await svcRows(table, { organization_id: ORG[org] }, column, column))[0][column];

/*
 * One entry per table or view. `read(row, w)`: whether member w sees a row of their own
 * organization (§9). `writers`: the roles the INSERT/UPDATE policies admit. `insertCols` /
 * `updateCols`: the client grants (true = whole table, a list = those columns, false = none).
 * `row(org)`: a new row for `org` with that organization's parents; `crossRefs`: rows of A that
 * point at a parent of B. `ownTarget(w)` / `bTarget()`: the row an update or delete aims at.
 * `patch(marker, row, w)`: a change a writer may make; `derived`: changes nobody may make;
 * `refusedTo(w, row)`: changes refused to that writer in particular. `required`: columns copied
 * into upsert payloads so the proposed row is valid. `outsiderRefusal(payload)`: how an insert by
 * the user without an organization is refused when a trigger gets there before RLS does.
 */
const TABLES = [
  {
    // The owner edits the organization; an admin its settings only (§9); plan columns are billing's.
    name: 'organizations', org: 'id', read: anyone, writers: OWNER_ADMIN, insertCols: false,
    editors: 'the owner edits their organization, an admin only its settings, nobody the other organization',
    updateCols: ['name', 'slug', 'timezone', 'currency', 'regulatory_regime', 'settings'],
    row: async () => ({ id: randomUUID(), name: 'Hijacked Gas', slug: unique('hijack') }),
    ownTarget: async () => ORG.a, bTarget: async () => ORG.b,
    patch: (marker, row, w) => (w.role === 'admin'
      ? { settings: { ...row.settings, isolation_probe: marker } }
      : { regulatory_regime: REGIMES.find((r) => r !== row.regulatory_regime) }),
    refusedTo: (w, row) => (w.role === 'admin'
      ? [{ regulatory_regime: REGIMES.find((r) => r !== row.regulatory_regime) }, { name: 'Renamed by the admin' }]
      : []),
    derived: [{ max_cylinders: 100000 }, { subscription_status: 'active' }], required: ['name', 'slug'],
  },
  {
    // Everyone may edit their own name and phone (the writers here are the row's own user).
    name: 'profiles', read: anyone, writers: ROLES, insertCols: false, updateCols: ['full_name', 'phone'],
    editors: "each user edits their own name and phone, nobody a colleague's or the other organization's",
    row: async (org) => ({ id: randomUUID(), user_id: NO_ORG_USER, organization_id: ORG[org], role: 'owner' }),
    ownTarget: async (w) => w.profileId ?? null,
    peerTarget: async (w) => profileOf.get(userId('a', w.role === 'manager' ? 'owner' : 'manager')),
    bTarget: async () => profileOf.get(userId('b', 'driver')),
    patch: (marker) => ({ phone: marker }), derived: [{ role: 'owner' }, { is_active: false }],
    required: ['user_id', 'organization_id', 'role'],
  },
  {
    name: 'org_invitations', read: roleIn(OWNER_ADMIN), writers: [], insertCols: false, updateCols: false,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], email: `${unique('inv')}@iso.test`, role: 'admin', token_hash: 'x',
    }),
    ownTarget: async () => firstKey('org_invitations', 'a'), bTarget: async () => firstKey('org_invitations', 'b'),
    patch: (marker) => ({ token_hash: marker }), required: ['organization_id', 'email', 'role', 'token_hash'],
  },
  {
    name: 'locations', read: anyone, writers: OFFICE, insertCols: true, updateCols: true,
    row: async (org) => ({ id: randomUUID(), organization_id: ORG[org], kind: 'warehouse', name: unique('Iso store') }),
    ownTarget: async () => mine.location, bTarget: async () => ids.b.depot,
    patch: (marker) => ({ address: marker }), required: ['organization_id', 'kind', 'name'],
  },
  {
    name: 'vehicles', read: anyone, writers: OFFICE, insertCols: true, updateCols: true,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], unit_number: unique('T'), home_location_id: ids[org].depot,
    }),
    crossRefs: [async () => ({
      id: randomUUID(), organization_id: ORG.a, unit_number: unique('T'), home_location_id: ids.b.depot,
    })],
    ownTarget: async () => mine.vehicle, bTarget: async () => ids.b.truck,
    patch: (marker) => ({ plate: marker }), required: ['organization_id', 'unit_number'],
  },
  {
    name: 'bottle_types', read: anyone, writers: CYLINDER_WRITERS, insertCols: true, updateCols: true,
    row: async (org) => ({ id: randomUUID(), organization_id: ORG[org], product_code: unique('ISO-P') }),
    ownTarget: async () => mine.type, bTarget: async () => ids.b.medical,
    patch: (marker) => ({ description: marker }), required: ['organization_id', 'product_code'],
  },
  {
    // Global reference rows: every signed-in user reads them, nobody writes them.
    name: 'bottle_status_transitions', key: 'event_type', org: null, global: true, writers: [],
    insertCols: false, updateCols: false, upsertKey: 'event_type,from_status,to_status',
    row: async () => ({ event_type: 'fill', from_status: 'lost', to_status: 'full' }),
    find: (row) => ({ event_type: row.event_type, from_status: row.from_status }),
    ownTarget: async () => 'fill', patch: () => ({ to_status: 'at_customer' }),
    required: ['from_status', 'to_status'],
  },
  {
    // organization_id is not in the column grants: the default (the caller's organization) fills it.
    // Status, custody, the block flag, requalification dates and scan identity follow events.
    name: 'bottles', read: anyone, writers: CYLINDER_WRITERS, insertCols: BOTTLE_INSERT, updateCols: BOTTLE_UPDATE,
    row: async (org) => ({
      id: randomUUID(), ...(org === 'b' ? { organization_id: ORG.b } : {}), bottle_type_id: ids[org].oxygen,
      serial_number: unique('ISO-S'), barcode_number: unique('ISO-BC'), status: 'full',
    }),
    crossRefs: [
      async () => ({ id: randomUUID(), bottle_type_id: ids.b.oxygen, serial_number: unique('ISO-S'), status: 'full' }),
      async () => ({
        id: randomUUID(), bottle_type_id: ids.a.oxygen, serial_number: unique('ISO-S'), status: 'at_customer',
        current_customer_id: ids.b.weld,
      }),
    ],
    ownTarget: async () => mine.bottle, bTarget: async () => ids.b.sharedBottle,
    patch: (marker) => ({ notes: marker }), required: ['serial_number', 'bottle_type_id'],
    derived: [{ status: 'lost' }, { is_blocked: true }, { current_customer_id: null }, { next_inspection_date: '2099-12-31' },
      { barcode_number: 'ISO-RELABEL' }],
    // The registration trigger runs before RLS: with no organization there is no depot to put a
    // new cylinder in (a customer-held one needs none and meets RLS instead).
    outsiderRefusal: (payload) => (granted(BOTTLE_INSERT, payload) && payload.status !== 'at_customer'
      ? { status: 400, code: '23514' } : null),
  },
  {
    name: 'scan_exceptions', read: (row, w) => OFFICE.includes(w.role) || row.actor_user_id === w.uid,
    readColumns: 'actor_user_id', writers: OFFICE, insertCols: false, updateCols: ['status', 'message'],
    row: async (org) => ({ id: randomUUID(), organization_id: ORG[org], reason: 'unknown_code', raw_code: unique('X') }),
    ownTarget: async () => mine.exception, bTarget: async () => firstKey('scan_exceptions', 'b'),
    patch: (marker) => ({ message: marker }), derived: [{ reason: 'blocked' }, { actor_user_id: null }],
    required: ['organization_id', 'reason'],
  },
  {
    name: 'customers', read: anyone, writers: OFFICE, insertCols: true, updateCols: true,
    row: async (org) => ({ id: randomUUID(), organization_id: ORG[org], name: unique('Iso customer') }),
    crossRefs: [async () => ({
      id: randomUUID(), organization_id: ORG.a, name: unique('Iso dept'), parent_customer_id: ids.b.weld,
    })],
    ownTarget: async () => mine.editCustomer, bTarget: async () => ids.b.weld,
    patch: (marker) => ({ phone: marker }), required: ['organization_id', 'name'],
  },
  {
    // Financial terms: billing roles only (drivers and plant see none of them).
    name: 'customer_billing', key: 'customer_id', read: roleIn(BILLING), writers: OFFICE, insertCols: true,
    updateCols: true,
    row: async (org) => (org === 'a'
      ? { customer_id: (await svcInsert('customers', { organization_id: ORG.a, name: unique('Iso terms') }, 'id')).id,
          organization_id: ORG.a, credit_limit: 100 }
      : { customer_id: ids.b.beer, organization_id: ORG.b, credit_limit: 1000000 }),
    crossRefs: [async () => ({ customer_id: ids.b.beer, organization_id: ORG.a, credit_limit: 1000000 })],
    ownTarget: async () => mine.billingCustomer, bTarget: async () => ids.b.weld,
    patch: (marker) => ({ payment_terms: marker }), required: ['organization_id'],
  },
  {
    name: 'routes', read: driverAssigned, readColumns: 'driver_id', writers: OFFICE, insertCols: true,
    updateCols: true, driverFiltered: true,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], route_date: today(), name: unique('Iso route'),
      driver_id: userId(org, 'driver'), vehicle_id: ids[org].truck,
    }),
    crossRefs: [async () => ({
      id: randomUUID(), organization_id: ORG.a, route_date: today(), name: unique('Iso route'),
      driver_id: userId('b', 'driver'),
    })],
    ownTarget: async () => mine.route, bTarget: async () => ids.b.route,
    patch: (marker) => ({ notes: marker }), required: ['organization_id', 'route_date', 'name'],
  },
  {
    name: 'deliveries', read: driverAssigned, readColumns: 'driver_id', writers: OFFICE, insertCols: true,
    updateCols: true, driverFiltered: true,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], customer_id: ids[org].weld, delivery_number: unique('Iso'),
    }),
    crossRefs: [
      async () => ({ id: randomUUID(), organization_id: ORG.a, customer_id: ids.b.weld }),
      async () => ({ id: randomUUID(), organization_id: ORG.a, customer_id: mine.customer, driver_id: userId('b', 'driver') }),
    ],
    ownTarget: async () => mine.delivery, bTarget: async () => ids.b.d1,
    patch: (marker) => ({ delivery_notes: marker }), required: ['organization_id', 'customer_id'],
  },
  {
    name: 'delivery_items', read: driverStop, readColumns: 'delivery_id', writers: OFFICE, insertCols: true,
    updateCols: true, driverFiltered: true,
    row: async (org) => (org === 'a'
      ? { id: randomUUID(), organization_id: ORG.a, delivery_id: (await ownDelivery()).id, bottle_type_id: ids.a.oxygen }
      : { id: randomUUID(), organization_id: ORG.b, delivery_id: ids.b.d2, bottle_type_id: ids.b.oxygen }),
    crossRefs: [async () => ({
      id: randomUUID(), organization_id: ORG.a, delivery_id: ids.b.d1, bottle_type_id: ids.a.oxygen,
    })],
    ownTarget: async () => mine.item, bTarget: async () => firstKey('delivery_items', 'b'),
    patch: (marker) => ({ notes: marker }), required: ['organization_id', 'delivery_id', 'bottle_type_id'],
  },
  {
    // The event log, custody and the ledger: read-only for every client.
    name: 'bottle_events', read: driverScan, readColumns: 'actor_user_id, delivery_id', writers: [],
    insertCols: false, updateCols: false, driverFiltered: true,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], event_type: 'locate', bottle_id: ids[org].sharedBottle,
    }),
    ownTarget: async () => (await svcOne('bottle_events', { bottle_id: mine.bottle }, 'id')).id,
    bTarget: async () => (await svcOne('bottle_events', { bottle_id: ids.b.sharedBottle, event_type: 'register' }, 'id')).id,
    patch: () => ({ voided: true }), required: ['organization_id', 'event_type', 'bottle_id'],
  },
  {
    name: 'rentals', read: (_row, w) => w.role !== 'driver', writers: [], insertCols: false, updateCols: false,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], customer_id: ids[org].weld, bottle_id: ids[org].sharedBottle,
      rental_start_date: today(), started_at: new Date().toISOString(),
    }),
    ownTarget: async () => (await svcOne('rentals', { bottle_id: mine.aged }, 'id')).id,
    bTarget: async () => firstKey('rentals', 'b'),
    patch: (marker) => ({ notes: marker }),
    required: ['organization_id', 'customer_id', 'bottle_id', 'rental_start_date', 'started_at'],
  },
  {
    name: 'balance_adjustments', read: driverScan, readColumns: 'actor_user_id, delivery_id', writers: [],
    insertCols: false, updateCols: false, driverFiltered: true,
    row: async (org) => ({
      id: randomUUID(), organization_id: ORG[org], customer_id: ids[org].weld, bottle_type_id: ids[org].oxygen,
      delta: 100, reason: 'dns',
    }),
    ownTarget: async () => mine.adjustment, bTarget: async () => firstKey('balance_adjustments', 'b'),
    patch: (marker) => ({ notes: marker }), required: ['organization_id', 'customer_id', 'bottle_type_id', 'delta', 'reason'],
  },
  {
    name: 'audit_logs', read: roleIn(OWNER_ADMIN), writers: [], insertCols: false, updateCols: false,
    row: async (org) => ({ organization_id: ORG[org], table_name: unique('iso'), action: 'insert' }),
    find: (row) => ({ table_name: row.table_name }),
    ownTarget: async () => firstKey('audit_logs', 'a'), bTarget: async () => firstKey('audit_logs', 'b'),
    patch: () => ({ action: 'delete' }), required: ['organization_id', 'table_name', 'action'],
    // The id is GENERATED ALWAYS: PostgreSQL refuses to take one from anybody, before any grant.
    keyedUpsertRefusal: { status: 400, code: '428C9' },
  },
  {
    // A security_invoker view: the caller's policies apply underneath; office roles and viewers.
    // It is not auto-updatable, so PostgreSQL refuses every write before looking at grants
    // (55000), which PostgREST, and so this server, answers with 500.
    name: 'business_metrics', key: 'organization_id', view: true, writers: [], insertCols: false, updateCols: false,
    writeRefusal: { status: 500, code: '55000' },
    expected: (w) => (BILLING.includes(w.role) ? [ORG[w.org]] : []),
    row: async (org) => ({ organization_id: ORG[org], bottles_active: 0 }),
    ownTarget: async () => ORG.a, bTarget: async () => ORG.b, patch: () => ({ bottles_active: 0 }),
  },
];

for (const t of TABLES) {
  t.key ??= 'id';
  if (t.org === undefined) t.org = 'organization_id';
  t.find ??= (row) => ({ [t.key]: row[t.key] });
}

const granted = (grant, payload) => grant === true || (Array.isArray(grant) && Object.keys(payload).every((c) => grant.includes(c)));
/** How a write by w is refused: the view's refusal, a trigger's for the outsider, or 401/403. */
function refusal(t, w, payload) {
  if (t.writeRefusal) return t.writeRefusal;
  return (w === NO_ORG && payload && t.outsiderRefusal?.(payload)) || denied(w);
}
const isWriter = (t, w) => !w.anon && w.role !== undefined && t.writers.includes(w.role);

/** A's and B's rows of a table as service_role, for expected sets (views are not readable so). */
async function serviceView(t) {
  const columns = [...new Set([t.key, t.org, t.readColumns].filter(Boolean))].join(', ');
  const both = [ORG.a, ORG.b];
  const rows = t.view ? [] : await svcRows(t.name, t.global ? {} : { [t.org]: both }, columns);
  const deliveries = await svcRows('deliveries', { organization_id: both }, 'id, driver_id');
  return { rows, deliveries };
}

/** The keys member w must see of their own organization, given a service snapshot. */
function expectedKeys(t, snapshot, w) {
  if (w.anon) return [];
  if (t.global) return snapshot.rows.map((r) => r[t.key]);
  if (t.expected) return w.org ? t.expected(w) : [];
  if (!w.org) return [];
  const ctx = { ...w, deliveries: new Set(snapshot.deliveries.filter((d) => d.driver_id === w.uid).map((d) => d.id)) };
  return snapshot.rows.filter((r) => r[t.org] === ORG[w.org] && t.read(r, ctx)).map((r) => r[t.key]);
}

const asSet = (keys) => new Set(keys.map(String));
function assertSubset(small, big, what) {
  const missing = [...small].filter((k) => !big.has(k));
  assert.deepEqual(missing, [], what);
}

/** The rows of `t` matching `filter`, as service_role, in a stable order for deep comparisons. */
async function readBack(t, filter) {
  if (t.view) return [];
  const rows = await svcRows(t.name, filter);
  return rows.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
}

for (const t of TABLES) {
  test(`${t.name}: select — each role reads exactly what §9 lets it read of its own organization, nothing of the other`, async () => {
    const beforeSnap = await serviceView(t);
    const seen = new Map();
    for (const w of [...A_MEMBERS, ...B_MEMBERS, ANON, NO_ORG]) {
      const res = await w.db.from(t.name).select(t.key);
      if (w.anon) {
        assertRefused(res, denied(w), `${w.label} select ${t.name}`);
        continue;
      }
      assert.equal(res.error, null, `${w.label} select ${t.name}: ${JSON.stringify(res.error)}`);
      seen.set(w, asSet(res.data.map((r) => r[t.key])));
      if (t.global || !w.org) continue;
      // Asking for the other organization by name and by its rows' keys gives nothing.
      const other = w.org === 'a' ? 'b' : 'a';
      assertRows(await w.db.from(t.name).select(t.key).eq(t.org, ORG[other]), 0, `${w.label} filters ${t.name} by the other organization`);
      const otherKeys = t.expected || t.org === 'id' ? [ORG[other]]
        : beforeSnap.rows.filter((r) => r[t.org] === ORG[other]).slice(0, 50).map((r) => r[t.key]);
      assert.ok(otherKeys.length > 0, `the fixture has ${t.name} rows in ${other}`);
      assertRows(await w.db.from(t.name).select(t.key).in(t.key, otherKeys), 0, `${w.label} asks for ${t.name} keys of the other organization`);
    }
    const afterSnap = await serviceView(t);
    for (const [w, keys] of seen) {
      // Rows only accumulate while this runs (nothing deletes), so what the caller saw lies
      // between what it had to see before and may see after.
      const required = asSet(expectedKeys(t, beforeSnap, w));
      assertSubset(required, keys, `${w.label} misses ${t.name} rows it may read`);
      assertSubset(keys, asSet(expectedKeys(t, afterSnap, w)), `${w.label} reads ${t.name} rows it may not read`);
    }
    // The matrix bites: the office of A reads something, and a driver filter hides some of it.
    const office = expectedKeys(t, beforeSnap, A_MEMBERS[2]);
    if (!['audit_logs', 'org_invitations'].includes(t.name)) assert.ok(office.length > 0, `A's manager reads some ${t.name}`);
    if (t.driverFiltered) {
      const driver = expectedKeys(t, beforeSnap, A_MEMBERS[3]);
      assert.ok(driver.length > 0 && driver.length < office.length, `${t.name}: the driver sees some, not all (${driver.length}/${office.length})`);
    }
  });

  const inserters = t.writers.length && t.insertCols ? `only ${t.writers.join(', ')} add rows, and only to their own organization` : 'nobody adds rows, to either organization';
  test(`${t.name}: insert — ${inserters}`, async () => {
    for (const w of A_CALLERS) {
      const own = await t.row('a');
      const allowed = isWriter(t, w) && granted(t.insertCols, own);
      const res = await w.db.from(t.name).insert(own).select(t.key);
      if (allowed) assertRows(res, 1, `${w.label} insert ${t.name}`);
      else assertRefused(res, refusal(t, w, own), `${w.label} insert ${t.name}`);
      if (!t.view) {
        const stored = await readBack(t, t.find(own));
        assert.equal(stored.length, allowed ? 1 : 0, `${w.label} insert ${t.name}: read-back`);
        if (allowed && t.org) assert.equal(stored[0][t.org], ORG.a);
      }
      if (t.global) continue;

      const theirs = await t.row('b');
      assertRefused(await w.db.from(t.name).insert(theirs).select(t.key), refusal(t, w, theirs), `${w.label} insert ${t.name} into B`);
      if (!t.view) assert.equal((await readBack(t, t.find(theirs))).length, 0, `${w.label} insert ${t.name} into B: read-back`);

      for (const make of t.crossRefs ?? []) {
        const pointing = await make();
        const res2 = await w.db.from(t.name).insert(pointing).select(t.key);
        const expected = isWriter(t, w) && granted(t.insertCols, pointing) ? FK_VIOLATION : refusal(t, w, pointing);
        assertRefused(res2, expected, `${w.label} insert ${t.name} pointing at B: ${JSON.stringify(pointing)}`);
        assert.equal((await readBack(t, t.find(pointing))).length, 0, `${w.label} insert ${t.name} pointing at B: read-back`);
      }
    }
  });

  const editors = t.editors ?? (t.writers.length && t.updateCols ? `only ${t.writers.join(', ')} edit rows, and only their own organization's` : 'nobody edits rows of either organization');
  test(`${t.name}: update — ${editors}`, async () => {
    const bKey = t.global ? null : await t.bTarget();
    const bBefore = bKey === null ? null : await readBack(t, { [t.key]: bKey });
    let step = 0;
    for (const w of A_CALLERS) {
      const attempt = async (key, patch, expected, what) => {
        const rowBefore = await readBack(t, { [t.key]: key });
        const res = await w.db.from(t.name).update(patch).eq(t.key, key).select(t.key);
        if (expected === 'one') assertRows(res, 1, what);
        else if (expected === 'none') assertRows(res, 0, what);
        else assertRefused(res, expected, what);
        if (t.view) return;
        const rowAfter = await readBack(t, { [t.key]: key });
        if (expected === 'one') {
          assert.equal(rowAfter.length, 1, what);
          for (const [column, value] of Object.entries(patch)) assert.deepEqual(rowAfter[0][column], value, `${what}: ${column}`);
        } else {
          assert.deepEqual(rowAfter, rowBefore, `${what}: nothing changed`);
        }
      };
      const outcome = (patch, allowedOutcome) => {
        if (t.writeRefusal) return t.writeRefusal;
        if (w.anon || !granted(t.updateCols, patch)) return denied(w);
        return isWriter(t, w) ? allowedOutcome : 'none';
      };

      const ownKey = await t.ownTarget(w);
      if (ownKey !== null) {
        const [current] = await readBack(t, { [t.key]: ownKey });
        const patch = t.patch(`iso-${++step}-${randomUUID().slice(0, 6)}`, current ?? {}, w);
        await attempt(ownKey, patch, outcome(patch, 'one'), `${w.label} update own ${t.name} ${JSON.stringify(patch)}`);
        for (const refused of isWriter(t, w) ? t.refusedTo?.(w, current) ?? [] : []) {
          await attempt(ownKey, refused, denied(w), `${w.label} update own ${t.name} ${JSON.stringify(refused)}`);
        }
        for (const derived of t.derived ?? []) {
          await attempt(ownKey, derived, outcome(derived, denied(w)), `${w.label} update ${t.name} ${JSON.stringify(derived)}`);
        }
        if (t.org === 'organization_id') {
          // Moving a row to B: refused by the column grant, the organization trigger or RLS.
          const move = { organization_id: ORG.b };
          await attempt(ownKey, move, outcome(move, denied(w)), `${w.label} moves ${t.name} to B`);
        }
      }
      if (t.peerTarget && w.role) {
        const patch = t.patch(`iso-peer-${++step}`, {}, w);
        await attempt(await t.peerTarget(w), patch, outcome(patch, 'none'), `${w.label} update a colleague's ${t.name}`);
      }
      if (bKey !== null) {
        const patch = t.patch(`iso-b-${++step}`, bBefore[0] ?? {}, w);
        await attempt(bKey, patch, outcome(patch, 'none'), `${w.label} update B's ${t.name}`);
      }
    }
    if (bKey !== null) assert.deepEqual(await readBack(t, { [t.key]: bKey }), bBefore, `B's ${t.name} row is unchanged`);
  });

  test(`${t.name}: upsert — inserts and merges only as insert and update allow; B's rows are never merged`, async () => {
    const onConflict = t.upsertKey ?? t.key;
    const bKey = t.global ? null : await t.bTarget();
    const bBefore = bKey === null ? [] : await readBack(t, { [t.key]: bKey });
    for (const w of A_CALLERS) {
      const mergeAllowed = (payload) => isWriter(t, w) && granted(t.insertCols, payload) && granted(t.updateCols, payload);

      const fresh = await t.row('a');
      const res = await w.db.from(t.name).upsert(fresh, { onConflict }).select(t.key);
      if (mergeAllowed(fresh)) assertRows(res, 1, `${w.label} upsert a new ${t.name}`);
      else assertRefused(res, (t.key in fresh && t.keyedUpsertRefusal) || refusal(t, w), `${w.label} upsert a new ${t.name}`);
      if (!t.view) {
        assert.equal((await readBack(t, t.find(fresh))).length, mergeAllowed(fresh) ? 1 : 0, `${w.label} upsert a new ${t.name}: read-back`);
      }

      const ownKey = await t.ownTarget(w);
      if (ownKey !== null && !t.view) {
        const [current] = await readBack(t, { [t.key]: ownKey });
        const payload = {
          [t.key]: ownKey, ...pick(current, t.required ?? []), ...t.patch(`iso-up-${randomUUID().slice(0, 6)}`, current, w),
        };
        const merged = await w.db.from(t.name).upsert(payload, { onConflict }).select(t.key);
        const [after] = await readBack(t, { [t.key]: ownKey });
        if (mergeAllowed(payload)) {
          assertRows(merged, 1, `${w.label} upsert own ${t.name}`);
          for (const [column, value] of Object.entries(payload)) assert.deepEqual(after[column], value, `${w.label} upsert own ${t.name}: ${column}`);
        } else {
          assertRefused(merged, t.keyedUpsertRefusal ?? denied(w), `${w.label} upsert own ${t.name}`);
          assert.deepEqual(after, current, `${w.label} upsert own ${t.name}: nothing changed`);
        }
      }

      if (bKey !== null) {
        // B's key, claimed for A: merging must not touch B's row; ignoring duplicates does nothing.
        const claim = {
          [t.key]: bKey, ...pick(bBefore[0] ?? {}, t.required ?? []),
          ...(t.org === 'organization_id' && granted(t.insertCols, { organization_id: 1 }) ? { organization_id: ORG.a } : {}),
          ...t.patch(`iso-claim-${randomUUID().slice(0, 6)}`, bBefore[0] ?? {}, w),
        };
        assertRefused(await w.db.from(t.name).upsert(claim, { onConflict }).select(t.key),
          t.keyedUpsertRefusal ?? t.writeRefusal ?? denied(w), `${w.label} upsert B's ${t.name}`);
        const ignored = await w.db.from(t.name).upsert(claim, { onConflict, ignoreDuplicates: true }).select(t.key);
        if (isWriter(t, w) && granted(t.insertCols, claim)) assertRows(ignored, 0, `${w.label} upsert-ignore B's ${t.name}`);
        else assertRefused(ignored, t.keyedUpsertRefusal ?? refusal(t, w, claim), `${w.label} upsert-ignore B's ${t.name}`);
      }
    }
    if (bKey !== null) assert.deepEqual(await readBack(t, { [t.key]: bKey }), bBefore, `B's ${t.name} row is unchanged`);
  });

  test(`${t.name}: delete — nobody deletes, in their own organization or the other's`, async () => {
    const targets = [await t.ownTarget(A_MEMBERS[0]), t.global ? null : await t.bTarget()].filter((k) => k !== null);
    const rowsBefore = await Promise.all(targets.map((key) => readBack(t, { [t.key]: key })));
    for (const w of A_CALLERS) {
      for (const key of targets) {
        assertRefused(await w.db.from(t.name).delete().eq(t.key, key).select(t.key), refusal(t, w), `${w.label} delete ${t.name} ${key}`);
      }
    }
    assert.deepEqual(await Promise.all(targets.map((key) => readBack(t, { [t.key]: key }))), rowsBefore, `${t.name}: rows are still there`);
    if (!t.view) assert.ok(rowsBefore.every((rows) => rows.length > 0), `${t.name}: the targets exist`);
  });
}

test('the matrix covers every table and view that /rest/v1 exposes in public', async () => {
  assert.deepEqual(await exposed(false), TABLES.map((t) => t.name).sort());
});
