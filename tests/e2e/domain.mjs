// Shared facts and helpers of the gas-cylinder suites (fixture: tests/fixtures/0100_domain.sql).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { SERVICE_ROLE_KEY, client, userClient } from './env.mjs';

export const ORG = {
  a: 'a0000000-0000-4000-8000-000000000000',
  b: 'b0000000-0000-4000-8000-000000000000',
  l: 'c0000000-0000-4000-8000-000000000000',
};
export const ROLES = ['owner', 'admin', 'manager', 'driver', 'plant', 'viewer'];
const PREFIX = { a: 'aaaaaaaa', b: 'bbbbbbbb' };

/** The user id of `role` in org `org` ('a' or 'b'); `second driver` is the other driver. */
export function userId(org, role) {
  const digit = role === 'second driver' ? 7 : ROLES.indexOf(role) + 1;
  assert.ok(digit > 0, `unknown role ${role}`);
  return `${PREFIX[org]}-0000-4000-8000-00000000000${digit}`;
}
export const L_OWNER = 'cccccccc-0000-4000-8000-000000000001';
export const L_MANAGER = 'cccccccc-0000-4000-8000-000000000002';
export const NO_ORG_USER = 'dddddddd-0000-4000-8000-000000000001';

/** supabase-js signed in as `role` of org `org`. */
export const as = (org, role) => userClient(userId(org, role));
export const service = () => client(SERVICE_ROLE_KEY);

export const unique = (prefix = 'x') => `${prefix}-${randomUUID().slice(0, 8)}`;

/** Data or a thrown assertion naming the error. */
export function ok({ data, error }) {
  assert.equal(error, null, `unexpected error: ${JSON.stringify(error)}`);
  return data;
}

/** One row of `table` in `org` where `column` = `value`, read as service_role. */
export async function one(table, org, column, value, columns = '*') {
  const rows = ok(await service().from(table).select(columns).eq('organization_id', ORG[org]).eq(column, value));
  assert.equal(rows.length, 1, `${table}.${column} = ${value} in ${org}: ${rows.length} rows`);
  return rows[0];
}

/** Ids of the named fixture rows in an organization. */
export async function fixtureIds(org) {
  const byName = async (table, column, value) => (await one(table, org, column, value, 'id')).id;
  return {
    depot: await byName('locations', 'name', 'Main depot'),
    retester: await byName('locations', 'name', 'Retester'),
    truck: await byName('vehicles', 'unit_number', 'T1'),
    oxygen: await byName('bottle_types', 'product_code', 'OX200'),
    medical: await byName('bottle_types', 'product_code', 'MEDOX-E'),
    weld: await byName('customers', 'name', 'Weld Co'),
    beer: await byName('customers', 'name', 'Beer Co'),
    route: await byName('routes', 'name', 'North'),
    d1: await byName('deliveries', 'delivery_number', org === 'a' ? 'acme-D1' : 'bravo-D1'),
    d2: await byName('deliveries', 'delivery_number', org === 'a' ? 'acme-D2' : 'bravo-D2'),
    sharedBottle: await byName('bottles', 'barcode_number', 'SHARED-1'),
  };
}

/** Registers cylinders as org A's manager (or `who`) and returns their barcodes and ids. */
export async function register(rows, who = as('a', 'manager')) {
  const withCodes = rows.map((row) => ({ serial_number: unique('SN'), barcode_number: unique('BC'), product_code: 'OX200', ...row }));
  const result = ok(await who.rpc('register_bottles', { p_rows: withCodes }));
  assert.equal(result.failed, 0, JSON.stringify(result.results));
  return withCodes.map((row, i) => ({ code: row.barcode_number, id: result.results[i].bottle_id }));
}

/** The current state of cylinders, read as service_role. */
export async function bottle(id) {
  const rows = ok(await service().from('bottles').select('*').eq('id', id));
  assert.equal(rows.length, 1);
  return rows[0];
}

/**
 * A private organization with the fixture's rows (a user per role, depot, retester, truck T1,
 * OX200 and MEDOX-E, Weld Co and Beer Co, route North with stop D1 and stop D2 for the second
 * driver, five cylinders) under fresh ids, for tests that change state: suites run in parallel
 * over one database. Returns its id, its users, clients signed in as them and its fixture ids.
 */
export async function freshOrg() {
  const id = randomUUID();
  const prefix = randomUUID().slice(0, 8);
  const slug = `t-${prefix}`;
  ok(await service().schema('fixtures').rpc('create_domain_org', { p_org: id, p_slug: slug, p_user_prefix: prefix }));
  const user = (role) => {
    const digit = role === 'second driver' ? 7 : ROLES.indexOf(role) + 1;
    assert.ok(digit > 0, `unknown role ${role}`);
    return `${prefix}-0000-4000-8000-00000000000${digit}`;
  };
  const byName = async (table, column, value) => {
    const rows = ok(await service().from(table).select('id').eq('organization_id', id).eq(column, value));
    assert.equal(rows.length, 1, `${table}.${column} = ${value}: ${rows.length} rows`);
    return rows[0].id;
  };
  return {
    id,
    slug,
    userId: user,
    as: (role) => userClient(user(role)),
    ids: {
      depot: await byName('locations', 'name', 'Main depot'),
      retester: await byName('locations', 'name', 'Retester'),
      truck: await byName('vehicles', 'unit_number', 'T1'),
      oxygen: await byName('bottle_types', 'product_code', 'OX200'),
      medical: await byName('bottle_types', 'product_code', 'MEDOX-E'),
      weld: await byName('customers', 'name', 'Weld Co'),
      beer: await byName('customers', 'name', 'Beer Co'),
      route: await byName('routes', 'name', 'North'),
      d1: await byName('deliveries', 'delivery_number', `${slug}-D1`),
      d2: await byName('deliveries', 'delivery_number', `${slug}-D2`),
      sharedBottle: await byName('bottles', 'barcode_number', 'SHARED-1'),
    },
  };
}

/** The event log of one cylinder, oldest first, read as service_role. */
export async function eventsOf(bottleId) {
  return ok(await service().from('bottle_events').select('*').eq('bottle_id', bottleId)
    .order('recorded_at', { ascending: true }).order('id', { ascending: true }));
}

/** The custody periods (rentals) of one cylinder, oldest first, read as service_role. */
export async function rentalsOf(bottleId) {
  return ok(await service().from('rentals').select('*').eq('bottle_id', bottleId)
    .order('started_at', { ascending: true }).order('created_at', { ascending: true }));
}
