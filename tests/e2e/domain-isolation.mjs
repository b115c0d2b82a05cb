// The shared part of the tenant isolation matrix of the gas-cylinder domain (issue 6, acceptance
// 2): the callers, how refusals look, service_role helpers and the rows the suites own. The matrix
// itself is in domain-isolation.test.mjs (tables and views, every verb) and
// domain-isolation-rpc.test.mjs (every RPC). Fixture: fixtures/0100_domain.sql (organizations A
// and B, one user per role in each). Each suite makes its own rows in A with setUpSuite, so suites
// running alongside are not disturbed; fixture rows are only read, or targeted by attempts that
// must fail.
import assert from 'node:assert/strict';

import { ANON_KEY, API_URL, SERVICE_ROLE_KEY, client, userClient } from './env.mjs';
import { NO_ORG_USER, ORG, ROLES, as, fixtureIds, ok, service, unique, userId } from './domain.mjs';

/** The office roles of §9 (planning, customers, deliveries). */
export const OFFICE = ['owner', 'admin', 'manager'];
export const OWNER_ADMIN = ['owner', 'admin'];
/** Who reads financial terms and the business metrics (§9: the office and viewers). */
export const BILLING = [...OFFICE, 'viewer'];
/** Who registers and edits cylinders and their products (§9: the office and plant). */
export const CYLINDER_WRITERS = [...OFFICE, 'plant'];
/** Today's date, as a date column takes it. */
export const today = () => new Date().toISOString().slice(0, 10);

/** service_role, for setup and read-backs. */
export const db = service();
/** A's manager, who prepares state for other callers' calls. */
export const manager = as('a', 'manager');

function member(org, role) {
  return { label: `${org.toUpperCase()} ${role}`, org, role, uid: userId(org, role), db: as(org, role) };
}
/** A caller per role of A (and of B): { label, org, role, uid, db, profileId once set up }. */
export const A_MEMBERS = ROLES.map((role) => member('a', role));
export const B_MEMBERS = ROLES.map((role) => member('b', role));
/** The outsiders: no key but the anon key, and a signed-in user who belongs to no organization. */
export const ANON = { label: 'anon', anon: true, db: client(ANON_KEY) };
export const NO_ORG = { label: 'user without an organization', uid: NO_ORG_USER, db: userClient(NO_ORG_USER) };
/** Everyone who tries to reach B (and to act in A): A's roles and the outsiders. */
export const A_CALLERS = [...A_MEMBERS, ANON, NO_ORG];

/** How a caller is refused by a grant, an RLS check or an RPC's role check (42501). */
export const denied = (w) => ({ status: w.anon ? 401 : 403, code: '42501' });
/** An RPC's answer for an id that is not in the caller's organization. */
export const NOT_FOUND = { status: 404, code: 'not_found' };
/** A composite foreign key refusing a row of A that points at a row of B. */
export const FK_VIOLATION = { status: 409, code: '23503' };

/** The response is the refusal `{ status, code }`, with no data. */
export function assertRefused(res, { status, code }, what) {
  assert.notEqual(res.error, null, `${what}: expected ${status} ${code}, got data ${JSON.stringify(res.data)}`);
  assert.equal(res.status, status, `${what}: ${JSON.stringify(res.error)}`);
  assert.equal(res.error.code, code, `${what}: ${JSON.stringify(res.error)}`);
}

/** The response succeeded with exactly `count` rows. */
export function assertRows(res, count, what) {
  assert.equal(res.error, null, `${what}: ${JSON.stringify(res.error)}`);
  assert.equal(res.data.length, count, `${what}: ${JSON.stringify(res.data)}`);
}

/** Fixture ids of both organizations ({ a, b }, as fixtureIds returns them), once set up. */
export const ids = {};
/** The rows this suite owns in A (and one in B), made by setUpSuite. */
export const mine = {};
/** Profile ids by user id, for the fixture users of A and B. */
export const profileOf = new Map();

/** Inserts one row as service_role and returns it (its `columns`). */
export async function svcInsert(table, row, columns = '*') {
  return ok(await db.from(table).insert(row).select(columns).single());
}

/** Rows as service_role where each column equals (or, for an array, is in) the filter's value. */
export async function svcRows(table, filter, columns = '*', orderBy = null) {
  let query = db.from(table).select(columns);
  for (const [column, value] of Object.entries(filter)) {
    query = Array.isArray(value) ? query.in(column, value) : query.eq(column, value);
  }
  if (orderBy) query = query.order(orderBy);
  return ok(await query);
}

/** The one row matching `filter`, as service_role. */
export async function svcOne(table, filter, columns = '*') {
  const rows = await svcRows(table, filter, columns);
  assert.equal(rows.length, 1, `${table} ${JSON.stringify(filter)}: ${rows.length} rows`);
  return rows[0];
}

/** A cylinder of org A made by service_role (its register event comes from the trigger). */
export async function cylinder(status = 'full', extra = {}) {
  return svcInsert('bottles', {
    organization_id: ORG.a, bottle_type_id: ids.a.oxygen, serial_number: unique('ISO-S'),
    barcode_number: unique('ISO-BC'), status,
    ...(status === 'at_customer' ? { current_customer_id: mine.customer } : {}),
    ...extra,
  }, 'id, barcode_number');
}

/** A batch-scan answer with one scan, accepted. */
export function assertScanned(data, what) {
  assert.equal(data.ok, 1, `${what}: ${JSON.stringify(data)}`);
  assert.equal(data.failed, 0, `${what}: ${JSON.stringify(data)}`);
}

/** A cylinder of A on the suite's truck (loaded by A's manager). */
export async function cylinderOnTruck() {
  const b = await cylinder('full');
  assertScanned(ok(await manager.rpc('load_truck', { p_scans: [b.barcode_number], p_vehicle_id: mine.vehicle })), 'load');
  return b;
}

/** A cylinder of A marked lost by A's manager. */
export async function lostCylinder() {
  const b = await cylinder('full');
  assertScanned(ok(await manager.rpc('mark_lost', { p_bottle_ids: [b.id], p_reason: 'not on the shelf' })), 'mark_lost');
  return b;
}

/** A cylinder of A blocked by A's manager. */
export async function blockedCylinder() {
  const b = await cylinder('full');
  assertScanned(ok(await manager.rpc('block_bottles', { p_bottle_ids: [b.id], p_reason: 'hold' })), 'block');
  return b;
}

/** A cylinder's whole row, as service_role. */
export const cylinderState = (id) => svcOne('bottles', { id });

/** A new stop of A for `driverRole` (by default A's driver) on the suite's truck. */
export async function ownDelivery(driverRole = 'driver', customer = mine.customer) {
  return svcInsert('deliveries', {
    organization_id: ORG.a, customer_id: customer, driver_id: userId('a', driverRole), vehicle_id: mine.vehicle,
    delivery_number: unique('ISO-D'),
  }, 'id');
}

/** A fresh member of A with `role`: invited by A's owner, signed up, accepted. */
export async function newMember(role) {
  const email = `${unique('iso-member')}@iso.test`;
  const invitation = ok(await as('a', 'owner').rpc('invite_member', { p_email: email, p_role: role }));
  const created = await client(SERVICE_ROLE_KEY).auth.admin.createUser({ email, password: 'iso-pass-1', email_confirm: true });
  assert.equal(created.error, null, JSON.stringify(created.error));
  const uid = created.data.user.id;
  const profile = ok(await userClient(uid).rpc('accept_invitation', { p_token: invitation.token }));
  assert.equal(profile.organization_id, ORG.a);
  assert.equal(profile.role, role);
  return { uid, email, db: userClient(uid) };
}

/** Makes the suite's own rows (see `mine`); call it from `before`. */
export async function setUpSuite() {
  Object.assign(ids, { a: await fixtureIds('a'), b: await fixtureIds('b') });
  for (const org of ['a', 'b']) {
    for (const role of [...ROLES, 'second driver']) {
      const uid = userId(org, role);
      profileOf.set(uid, (await svcOne('profiles', { user_id: uid }, 'id')).id);
    }
  }
  for (const w of [...A_MEMBERS, ...B_MEMBERS]) w.profileId = profileOf.get(w.uid);

  const tag = unique('iso');
  const a = (row) => ({ organization_id: ORG.a, ...row });
  mine.customer = (await svcInsert('customers', a({ name: `Iso customer ${tag}` }), 'id')).id;
  mine.stranger = (await svcInsert('customers', a({ name: `Iso stranger ${tag}` }), 'id')).id;
  mine.editCustomer = (await svcInsert('customers', a({ name: `Iso edited ${tag}` }), 'id')).id;
  mine.billingCustomer = (await svcInsert('customers', a({ name: `Iso billed ${tag}` }), 'id')).id;
  await svcInsert('customer_billing', a({ customer_id: mine.billingCustomer, payment_terms: 'NET30' }));
  mine.location = (await svcInsert('locations', a({ kind: 'warehouse', name: `Iso store ${tag}` }), 'id')).id;
  mine.vehicle = (await svcInsert('vehicles', a({ unit_number: tag, home_location_id: ids.a.depot }), 'id')).id;
  mine.type = (await svcInsert('bottle_types', a({ product_code: `ISO-${tag}` }), 'id')).id;
  mine.route = (await svcInsert('routes', a({
    route_date: today(), name: `Iso ${tag}`, driver_id: userId('a', 'driver'), vehicle_id: mine.vehicle,
    start_location_id: ids.a.depot,
  }), 'id')).id;
  mine.route2 = (await svcInsert('routes', a({
    route_date: today(), name: `Iso second ${tag}`, driver_id: userId('a', 'second driver'), vehicle_id: mine.vehicle,
  }), 'id')).id;
  mine.delivery = (await svcInsert('deliveries', a({
    customer_id: mine.customer, route_id: mine.route, delivery_number: `ISO-${tag}`,
  }), 'id, driver_id')).id;
  mine.delivery2 = (await ownDelivery('second driver')).id;
  mine.item = (await svcInsert('delivery_items', a({ delivery_id: mine.delivery, bottle_type_id: ids.a.medical }), 'id')).id;
  await svcInsert('delivery_items', a({ delivery_id: mine.delivery2, bottle_type_id: ids.a.medical }));
  mine.exception = (await svcInsert('scan_exceptions', a({
    reason: 'unknown_code', raw_code: `ISO-${tag}`, actor_user_id: userId('a', 'driver'),
  }), 'id')).id;
  mine.aged = (await cylinder('at_customer', {
    custody_since: new Date(Date.now() - 200 * 86400e3).toISOString(),
  })).id;
  mine.bottle = (await cylinder('full')).id;
  mine.adjustment = (await svcInsert('balance_adjustments', a({
    customer_id: mine.customer, bottle_type_id: ids.a.oxygen, delta: 2, reason: 'opening_balance',
  }), 'id')).id;
  // A soft-deleted customer of B, so `restore` has something in B it must not reach.
  mine.bGone = (await svcInsert('customers', {
    organization_id: ORG.b, name: `Iso gone ${tag}`, deleted_at: new Date().toISOString(),
  }, 'id')).id;

  // Scans that make the driver filters bite: the driver's own scan on their route, the
  // manager's scan on the driver's stop (visible to the driver), and the manager's scan off the
  // driver's stops (not visible to the driver); a not-scanned line by the driver on their stop.
  const driver = as('a', 'driver');
  const onRoute = await cylinder('full');
  assertScanned(ok(await driver.rpc('load_truck', { p_scans: [onRoute.barcode_number], p_route_id: mine.route })), 'driver load');
  const onStop = await cylinder('full');
  assertScanned(ok(await manager.rpc('ship_bottles', {
    p_customer_id: mine.customer, p_scans: [onStop.barcode_number], p_delivery_id: mine.delivery,
  })), 'manager ship on the driver\'s stop');
  const offStop = await cylinder('full');
  assertScanned(ok(await manager.rpc('ship_bottles', { p_customer_id: mine.customer, p_scans: [offStop.barcode_number] })),
    'manager ship off the driver\'s stops');
  ok(await driver.rpc('record_not_scanned', {
    p_customer_id: mine.customer, p_lines: [{ product_code: 'OX200', delivered: 1 }], p_delivery_id: mine.delivery,
  }));
}

/** The columns of `row` named in `columns`. */
export const pick = (row, columns) => Object.fromEntries(columns.filter((c) => c in row).map((c) => [c, row[c]]));

/** The relations (or, with `rpc`, the functions) /rest/v1 exposes in public, from its OpenAPI root. */
export async function exposed(rpc) {
  const res = await fetch(`${API_URL}/rest/v1/`, {
    headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}`, accept: 'application/openapi+json' },
  });
  assert.equal(res.status, 200);
  // fixtures/0030_realtime.sql puts the realtime suite's own tables and functions (rt_e2e_*) in
  // public too.
  return Object.keys((await res.json()).paths)
    .filter((path) => path !== '/' && !/^\/(rpc\/)?rt_e2e_/.test(path) && path.startsWith('/rpc/') === rpc)
    .map((path) => path.replace(/^\/(rpc\/)?/, ''))
    .sort();
}
