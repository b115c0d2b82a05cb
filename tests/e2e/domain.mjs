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
