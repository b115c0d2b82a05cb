// Tenant isolation matrix of the gas-cylinder domain (issue 6, acceptance 2), RPCs, driven through
// the real supabase-js. The callers are A's six roles plus two outsiders (anon, and a signed-in
// user without an organization). For every RPC under /rest/v1/rpc:
//   - passing B's ids (customers, cylinders, trucks, depots, routes, deliveries, events, members,
//     Storage paths) to A's calls is refused, and a service_role snapshot of everything of B an
//     RPC could touch is unchanged afterwards;
//   - each role may call exactly what DOMAIN.md §7/§9 grants: the allowed roles see the effect
//     (read back as service_role), the others get 42501 and the read-back shows nothing changed;
//     drivers are held to their own routes and stops, admins kept off owners.
// RPCS below is the matrix; one loop derives every expected outcome from it. The tables are in
// domain-isolation.test.mjs; callers and helpers in domain-isolation.mjs.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';

import { SERVICE_ROLE_KEY, client, userClient } from './env.mjs';
import { ORG, ROLES, as, ok, unique, userId } from './domain.mjs';
import {
  A_CALLERS, A_MEMBERS, ANON, BILLING, B_MEMBERS, CYLINDER_WRITERS, NOT_FOUND, NO_ORG, OFFICE, OWNER_ADMIN, assertRefused,
  assertRows, assertScanned, blockedCylinder, cylinder, cylinderOnTruck, cylinderState, denied, exposed, ids, lostCylinder,
  manager, mine, newMember, ownDelivery, pick, setUpSuite, svcInsert, svcOne, svcRows,
} from './domain-isolation.mjs';

before(setUpSuite);

const bottleByCode = async (code) => svcOne('bottles', { organization_id: ORG.a, barcode_number: code });

/** Everything of B that an RPC of A could touch, as service_role, in a stable order. */
async function snapshotB() {
  const b = ORG.b;
  const rows = (table, filter, order = 'id') => svcRows(table, { organization_id: b, ...filter }, '*', order);
  const bottles = await rows('bottles', { serial_number: ['S-1', 'S-2', 'S-3', 'S-4', 'S-5'] });
  const bottleIds = bottles.map((x) => x.id);
  const deliveries = [ids.b.d1, ids.b.d2];
  const customers = [ids.b.weld, ids.b.beer, mine.bGone];
  return {
    organization: await svcRows('organizations', { id: b }),
    bottles,
    events: await rows('bottle_events', { bottle_id: bottleIds }),
    rentals: await rows('rentals', { bottle_id: bottleIds }),
    deliveries: await rows('deliveries', { id: deliveries }),
    items: await rows('delivery_items', { delivery_id: deliveries }),
    customers: await rows('customers', { id: customers }),
    billing: await rows('customer_billing', { customer_id: customers }, 'customer_id'),
    ledger: await rows('balance_adjustments', { customer_id: customers }),
    profiles: await rows('profiles', { user_id: [...ROLES, 'second driver'].map((role) => userId('b', role)) }),
    invitations: await rows('org_invitations', {}),
    exceptions: await rows('scan_exceptions', {}),
    places: await rows('locations', { id: [ids.b.depot, ids.b.retester] }),
    vehicles: await rows('vehicles', { id: ids.b.truck }),
    routes: await rows('routes', { id: ids.b.route }),
  };
}

// How an allowed caller is answered when it passes something of B.
const refusedAs = (expected) => (res, what) => assertRefused(res, expected, what);
const noRows = (res, what) => assertRows(res, 0, what);
const NOT_A_CUSTOMER = { status: 400, code: '22023' };
const INVALID_PATH = { status: 422, code: 'invalid_object_path' };
function resultRefused(error, field) {
  return (res, what) => {
    assert.equal(res.error, null, `${what}: ${JSON.stringify(res.error)}`);
    assert.equal(res.data[field], 0, `${what}: ${JSON.stringify(res.data)}`);
    assert.deepEqual(pick(res.data.results[0], ['ok', 'error']), { ok: false, error }, `${what}: ${JSON.stringify(res.data)}`);
  };
}
const scanRefused = (error) => resultRefused(error, 'ok');
const rowRefused = (error) => resultRefused(error, 'inserted');

const isDriver = (w) => w.role === 'driver';
/** Where a driver's scan happens: their route or stop (an office caller may name the truck). */
const truckOf = (w) => (isDriver(w) ? { p_route_id: mine.route } : { p_vehicle_id: mine.vehicle });
const stopOf = (w) => (isDriver(w) ? { p_delivery_id: mine.delivery } : {});
const code = async (status = 'full') => (await cylinder(status)).barcode_number;
const onTruckCode = async () => (await cylinderOnTruck()).barcode_number;

/** An RPC that scans one fresh cylinder (made by `make`): allowed, it leaves it as `to(w)`. */
function onCylinder(make, args, to) {
  return {
    prepare: async (w) => {
      const b = await make();
      return { b, args: args(b, w), watch: () => cylinderState(b.id) };
    },
    check: async (data, p, w) => {
      assertScanned(data, 'the scan');
      const after = await cylinderState(p.b.id);
      assert.equal(after.last_event_id, data.results[0].event_id, 'the scan is the cylinder\'s last event');
      const expected = to(w);
      assert.deepEqual(pick(after, Object.keys(expected)), expected);
    },
  };
}
const fresh = (status) => () => cylinder(status);

/** An RPC on a fresh delivery of A's driver: allowed, it leaves the stop `status`. */
function onDelivery(args, status, driverRole = 'driver') {
  return {
    prepare: async () => {
      const d = await ownDelivery(driverRole);
      return { d, args: args(d), watch: () => svcOne('deliveries', { id: d.id }) };
    },
    check: async (data, p) => {
      assert.deepEqual(pick(data, ['id', 'status']), { id: p.d.id, status });
      assert.equal((await svcOne('deliveries', { id: p.d.id }, 'status')).status, status);
    },
  };
}

/** An RPC on one fresh row of `table` (made by `make`): `check` sees the row after the call. */
function onRow(table, make, args, check) {
  return {
    prepare: async () => {
      const id = await make();
      return { id, args: args(id), watch: () => svcOne(table, { id }) };
    },
    check: async (data, p) => check(await svcOne(table, { id: p.id }), data, p),
  };
}
const newCustomer = (extra = {}) => async () =>
  (await svcInsert('customers', { organization_id: ORG.a, name: unique('Iso customer'), ...extra }, 'id')).id;

/** An RPC on a fresh member of A with `role` (made through invite_member + accept_invitation). */
function onMember(role, args, check) {
  return {
    prepare: async () => {
      const m = await newMember(role);
      return { m, args: args(m), watch: () => svcOne('profiles', { user_id: m.uid }) };
    },
    check: async (data, p) => check(await svcOne('profiles', { user_id: p.m.uid }), data),
  };
}

/*
 * One entry per RPC (record_scans and soft_delete once per kind of call). `roles`: who may call it
 * (§7/§9); everybody else is refused with 42501 (401 for anon). `prepare(w)` makes fresh rows and
 * returns `{ args, watch }`: `check(data, p, w, before)` asserts the effect of an allowed call, and
 * `watch()` reads what the call would change, so a refused call is shown to change nothing.
 * `cross(w)`: calls that pass B's ids and how an allowed caller is refused; `ownRefusals(w)`:
 * calls inside A that are refused to that role all the same (drivers off their own stops, admins
 * touching owners).
 */
const RPCS = [
  {
    name: 'lookup_bottle', roles: ROLES,
    prepare: async () => ({ args: { p_code: 'SHARED-1' } }),
    check: async (data) => assert.deepEqual(data.map((r) => r.id), [ids.a.sharedBottle]),
    cross: () => [
      { label: "B's barcode", args: async () => ({ p_code: 'bravo-2' }), expect: noRows },
      {
        label: 'a serial number both organizations use', args: async () => ({ p_code: 'S-2' }),
        expect: async (res, what) => assert.deepEqual(res.data?.map((r) => r.id), [(await bottleByCode('acme-2')).id], what),
      },
    ],
  },
  {
    name: 'register_bottles', roles: CYLINDER_WRITERS,
    prepare: async () => {
      const row = { serial_number: unique('ISO-S'), barcode_number: unique('ISO-BC'), product_code: 'OX200' };
      return { args: { p_rows: [row] }, watch: () => svcRows('bottles', { barcode_number: row.barcode_number }) };
    },
    check: async (data, p) => {
      assert.equal(data.inserted, 1, JSON.stringify(data));
      const stored = await bottleByCode(p.args.p_rows[0].barcode_number);
      assert.deepEqual(pick(stored, ['id', 'bottle_type_id']), { id: data.results[0].bottle_id, bottle_type_id: ids.a.oxygen });
    },
    cross: () => {
      const row = (extra) => async () => ({ p_rows: [{ serial_number: unique('ISO-S'), product_code: 'OX200', ...extra }] });
      return [
        { label: "B's product", args: row({ product_code: undefined, bottle_type_id: ids.b.oxygen }), expect: rowRefused('unknown_product') },
        { label: "B's customer", args: row({ status: 'at_customer', customer_id: ids.b.weld }), expect: rowRefused('unknown_customer') },
        { label: "B's customer as owner", args: row({ ownership: 'customer', owner_customer_id: ids.b.weld }), expect: rowRefused('unknown_customer') },
        { label: "B's depot", args: row({ location_id: ids.b.depot }), expect: rowRefused('unknown_location') },
        { label: "B's cylinder id", args: row({ id: ids.b.sharedBottle }), expect: rowRefused('id_conflict') },
      ];
    },
  },
  {
    name: 'load_truck', roles: [...OFFICE, 'driver'],
    ...onCylinder(fresh('full'), (b, w) => ({ p_scans: [b.barcode_number], ...truckOf(w) }),
      () => ({ status: 'on_truck', current_vehicle_id: mine.vehicle })),
    cross: (w) => [
      { label: "B's truck", args: async () => ({ p_scans: [await code()], p_vehicle_id: ids.b.truck, ...(isDriver(w) ? { p_route_id: ids.b.route } : {}) }), expect: refusedAs(NOT_FOUND) },
      { label: "B's route", args: async () => ({ p_scans: [await code()], p_route_id: ids.b.route }), expect: refusedAs(NOT_FOUND) },
      { label: "B's barcode", args: async () => ({ p_scans: ['bravo-3'], ...truckOf(w) }), expect: scanRefused('unknown_code') },
      { label: "B's cylinder id", args: async () => ({ p_scans: [{ bottle_id: ids.b.sharedBottle }], ...truckOf(w) }), expect: scanRefused('unknown_code') },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: 'without a route', args: async () => ({ p_scans: [await code()], p_vehicle_id: mine.vehicle }) },
      { label: "another driver's route", args: async () => ({ p_scans: [await code()], p_route_id: mine.route2 }) },
    ] : []),
  },
  {
    name: 'unload_truck', roles: [...OFFICE, 'driver'],
    ...onCylinder(cylinderOnTruck, (b, w) => ({ p_scans: [b.barcode_number], ...truckOf(w) }),
      () => ({ status: 'full', current_location_id: ids.a.depot, current_vehicle_id: null })),
    cross: (w) => [
      { label: "B's truck", args: async () => ({ p_scans: [await onTruckCode()], p_vehicle_id: ids.b.truck, ...(isDriver(w) ? { p_route_id: mine.route } : {}) }), expect: refusedAs(NOT_FOUND) },
      { label: "B's depot", args: async () => ({ p_scans: [await onTruckCode()], p_location_id: ids.b.depot, ...truckOf(w) }), expect: refusedAs(NOT_FOUND) },
      { label: "B's route", args: async () => ({ p_scans: [await onTruckCode()], p_route_id: ids.b.route }), expect: refusedAs(NOT_FOUND) },
      { label: "B's barcode", args: async () => ({ p_scans: ['bravo-3'], ...truckOf(w) }), expect: scanRefused('unknown_code') },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: "another driver's route", args: async () => ({ p_scans: [await onTruckCode()], p_route_id: mine.route2 }) },
    ] : []),
  },
  {
    name: 'ship_bottles', roles: [...OFFICE, 'driver'],
    ...onCylinder(fresh('full'), (b, w) => ({ p_customer_id: mine.customer, p_scans: [b.barcode_number], ...stopOf(w) }),
      () => ({ status: 'at_customer', current_customer_id: mine.customer })),
    cross: (w) => [
      { label: "B's customer", args: async () => ({ p_customer_id: ids.b.weld, p_scans: [await code()], ...stopOf(w) }), expect: refusedAs(NOT_FOUND) },
      { label: "B's delivery", args: async () => ({ p_customer_id: mine.customer, p_scans: [await code()], p_delivery_id: ids.b.d1 }), expect: refusedAs(NOT_FOUND) },
      { label: "B's barcode", args: async () => ({ p_customer_id: mine.customer, p_scans: ['bravo-3'], ...stopOf(w) }), expect: scanRefused('unknown_code') },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: 'without a delivery', args: async () => ({ p_customer_id: mine.customer, p_scans: [await code()] }) },
      { label: "another driver's delivery", args: async () => ({ p_customer_id: mine.customer, p_scans: [await code()], p_delivery_id: mine.delivery2 }) },
    ] : []),
  },
  {
    name: 'record_return', roles: [...OFFICE, 'driver'],
    // A driver picks up onto the stop's truck; the office takes the cylinder back at the depot.
    ...onCylinder(fresh('at_customer'), (b, w) => ({ p_customer_id: mine.customer, p_scans: [b.barcode_number], ...stopOf(w) }),
      (w) => ({ status: isDriver(w) ? 'on_truck' : 'empty', current_customer_id: null })),
    cross: (w) => {
      const held = async (extra) => ({ p_customer_id: mine.customer, p_scans: [await code('at_customer')], ...stopOf(w), ...extra });
      return [
        { label: "B's customer", args: () => held({ p_customer_id: ids.b.weld }), expect: refusedAs(NOT_FOUND) },
        { label: "B's truck", args: () => held({ p_vehicle_id: ids.b.truck }), expect: refusedAs(NOT_FOUND) },
        { label: "B's depot", args: () => held({ p_location_id: ids.b.depot }), expect: refusedAs(NOT_FOUND) },
        { label: "B's delivery", args: () => held({ p_delivery_id: ids.b.d1 }), expect: refusedAs(NOT_FOUND) },
        { label: "B's cylinder at B's customer", args: () => held({ p_scans: ['bravo-4'] }), expect: scanRefused('unknown_code') },
      ];
    },
    ownRefusals: (w) => (isDriver(w) ? [
      { label: "another driver's delivery", args: async () => ({ p_customer_id: mine.customer, p_scans: [await code('at_customer')], p_delivery_id: mine.delivery2 }) },
    ] : []),
  },
  {
    name: 'record_not_scanned', roles: [...OFFICE, 'driver'],
    prepare: async (w) => ({
      args: { p_customer_id: mine.customer, p_lines: [{ product_code: 'OX200', delivered: 1, returned: 1 }], ...stopOf(w) },
      watch: () => svcRows('balance_adjustments', { customer_id: mine.customer }, '*', 'id'),
    }),
    check: async (data, p, w, before) => {
      assert.deepEqual(data, { recorded: 2 });
      const added = (await p.watch()).filter((row) => !before.some((old) => old.id === row.id));
      assert.deepEqual(added.map((row) => [row.reason, row.delta, row.actor_user_id]).sort(), [['dns', 1, w.uid], ['rns', -1, w.uid]]);
    },
    cross: (w) => [
      { label: "B's customer", args: async () => ({ p_customer_id: ids.b.weld, p_lines: [{ product_code: 'OX200', delivered: 1 }], ...stopOf(w) }), expect: refusedAs(NOT_FOUND) },
      { label: "B's delivery", args: async () => ({ p_customer_id: mine.customer, p_lines: [{ product_code: 'OX200', delivered: 1 }], p_delivery_id: ids.b.d1 }), expect: refusedAs(NOT_FOUND) },
      { label: "B's product", args: async () => ({ p_customer_id: mine.customer, p_lines: [{ bottle_type_id: ids.b.oxygen, delivered: 1 }], ...stopOf(w) }), expect: refusedAs(NOT_A_CUSTOMER) },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: "another driver's delivery", args: async () => ({ p_customer_id: mine.customer, p_lines: [{ product_code: 'OX200', delivered: 1 }], p_delivery_id: mine.delivery2 }) },
    ] : []),
  },
  {
    name: 'complete_delivery', roles: [...OFFICE, 'driver'],
    ...onDelivery((d) => ({ p_delivery_id: d.id, p_waive_reason: 'customer asked to leave it at the gate' }), 'completed'),
    cross: () => [
      { label: "B's delivery", args: async () => ({ p_delivery_id: ids.b.d1, p_waive_reason: 'gate' }), expect: refusedAs(NOT_FOUND) },
      {
        label: "a signature filed under B's folder", expect: refusedAs(INVALID_PATH),
        args: async () => {
          const d = await ownDelivery();
          return { p_delivery_id: d.id, p_signature_path: `${ORG.b}/deliveries/${d.id}/signature.png` };
        },
      },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: "another driver's delivery", args: async () => ({ p_delivery_id: (await ownDelivery('second driver')).id, p_waive_reason: 'gate' }) },
    ] : []),
  },
  {
    name: 'fail_delivery', roles: [...OFFICE, 'driver'],
    ...onDelivery((d) => ({ p_delivery_id: d.id, p_reason: 'site closed' }), 'failed'),
    cross: () => [
      { label: "B's delivery", args: async () => ({ p_delivery_id: ids.b.d1, p_reason: 'site closed' }), expect: refusedAs(NOT_FOUND) },
      {
        label: "a photo filed under B's folder", expect: refusedAs(INVALID_PATH),
        args: async () => {
          const d = await ownDelivery();
          return { p_delivery_id: d.id, p_reason: 'site closed', p_photo_paths: [`${ORG.b}/deliveries/${d.id}/photo-1.jpg`] };
        },
      },
    ],
    ownRefusals: (w) => (isDriver(w) ? [
      { label: "another driver's delivery", args: async () => ({ p_delivery_id: (await ownDelivery('second driver')).id, p_reason: 'closed' }) },
    ] : []),
  },
  {
    name: 'mark_lost', roles: OFFICE,
    ...onCylinder(fresh('full'), (b) => ({ p_bottle_ids: [b.id], p_reason: 'not at the customer' }), () => ({ status: 'lost' })),
    cross: () => [
      { label: "B's cylinder", args: async () => ({ p_bottle_ids: [ids.b.sharedBottle], p_reason: 'gone' }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'mark_found', roles: OFFICE,
    ...onCylinder(lostCylinder, (b) => ({ p_bottle_id: b.id, p_where: { location_id: ids.a.depot } }),
      () => ({ status: 'empty', current_location_id: ids.a.depot })),
    cross: () => [
      { label: "B's cylinder", args: async () => ({ p_bottle_id: ids.b.sharedBottle, p_where: { location_id: ids.a.depot } }), expect: scanRefused('unknown_code') },
      { label: "found at B's customer", args: async () => ({ p_bottle_id: (await lostCylinder()).id, p_where: { customer_id: ids.b.weld } }), expect: refusedAs(NOT_FOUND) },
      { label: "found at B's depot", args: async () => ({ p_bottle_id: (await lostCylinder()).id, p_where: { location_id: ids.b.depot } }), expect: refusedAs(NOT_FOUND) },
    ],
  },
  {
    name: 'block_bottles', roles: CYLINDER_WRITERS,
    ...onCylinder(fresh('full'), (b) => ({ p_bottle_ids: [b.id], p_reason: 'recall' }), () => ({ is_blocked: true, blocked_reason: 'recall' })),
    cross: () => [
      { label: "B's cylinder", args: async () => ({ p_bottle_ids: [ids.b.sharedBottle], p_reason: 'recall' }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'unblock_bottles', roles: CYLINDER_WRITERS,
    ...onCylinder(blockedCylinder, (b) => ({ p_bottle_ids: [b.id] }), () => ({ is_blocked: false, blocked_reason: null })),
    cross: () => [
      { label: "B's cylinder", args: async () => ({ p_bottle_ids: [ids.b.sharedBottle] }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'transfer_bottles', roles: CYLINDER_WRITERS,
    ...onCylinder(fresh('full'), (b) => ({ p_codes: [b.barcode_number], p_to_location_id: mine.location }),
      () => ({ status: 'full', current_location_id: mine.location })),
    cross: () => [
      { label: "B's depot", args: async () => ({ p_codes: [await code()], p_to_location_id: ids.b.depot }), expect: refusedAs(NOT_FOUND) },
      { label: "B's barcode", args: async () => ({ p_codes: ['bravo-2'], p_to_location_id: mine.location }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'record_scans', label: 'record_scans (locate)', roles: [...CYLINDER_WRITERS, 'driver'],
    ...onCylinder(fresh('full'), (b) => ({ p_event_type: 'locate', p_scans: [b.barcode_number] }), () => ({ status: 'full' })),
    cross: () => {
      const locate = async (extra) => ({ p_event_type: 'locate', p_scans: [await code()], ...extra });
      return [
        { label: "B's barcode", args: () => locate({ p_scans: ['bravo-2'] }), expect: scanRefused('unknown_code') },
        { label: "B's depot", args: () => locate({ p_location_id: ids.b.depot }), expect: refusedAs(NOT_FOUND) },
        { label: "B's customer", args: () => locate({ p_customer_id: ids.b.weld }), expect: refusedAs(NOT_FOUND) },
        { label: "B's truck", args: () => locate({ p_vehicle_id: ids.b.truck }), expect: refusedAs(NOT_FOUND) },
      ];
    },
  },
  {
    name: 'record_scans', label: 'record_scans (fill)', roles: CYLINDER_WRITERS,
    ...onCylinder(fresh('empty'), (b) => ({ p_event_type: 'fill', p_scans: [b.barcode_number] }), () => ({ status: 'full', fill_state: 'full' })),
    cross: () => [
      { label: "B's barcode", args: async () => ({ p_event_type: 'fill', p_scans: ['bravo-2'] }), expect: scanRefused('unknown_code') },
      { label: "B's cylinder id", args: async () => ({ p_event_type: 'fill', p_scans: [{ bottle_id: ids.b.sharedBottle }] }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'record_scans', label: 'record_scans (adjust)', roles: OWNER_ADMIN,
    ...onCylinder(fresh('full'), (b) => ({ p_event_type: 'adjust', p_scans: [b.barcode_number], p_reason: 'count', p_data: { requested_status: 'empty' } }),
      () => ({ status: 'empty' })),
    cross: () => [
      { label: "B's barcode", args: async () => ({ p_event_type: 'adjust', p_scans: ['bravo-2'], p_reason: 'count', p_data: { requested_status: 'full' } }), expect: scanRefused('unknown_code') },
    ],
  },
  {
    name: 'replay_bottle', roles: OFFICE,
    prepare: async () => {
      const b = await cylinder();
      return { args: { p_bottle_id: b.id }, watch: () => cylinderState(b.id) };
    },
    check: async (data, p) => assert.deepEqual(data, { bottle_id: p.args.p_bottle_id, status: 'full', applied: 1, refused: 0 }),
    cross: () => [{ label: "B's cylinder", args: async () => ({ p_bottle_id: ids.b.sharedBottle }), expect: refusedAs(NOT_FOUND) }],
  },
  {
    name: 'void_event', roles: OWNER_ADMIN,
    ...onRow('bottle_events', async () => {
      const scanned = ok(await manager.rpc('record_scans', { p_event_type: 'locate', p_scans: [await code()] }));
      return scanned.results[0].event_id;
    }, (id) => ({ p_event_id: id, p_reason: 'scanned by mistake' }), (event, data) => {
      assert.equal(event.voided, true);
      assert.equal(data.status, 'full');
    }),
    cross: () => [{
      label: "B's event", expect: refusedAs(NOT_FOUND),
      args: async () => ({ p_event_id: (await svcOne('bottle_events', { bottle_id: ids.b.sharedBottle, event_type: 'register' }, 'id')).id, p_reason: 'x' }),
    }],
  },
  {
    name: 'customer_balance', roles: [...BILLING, 'driver'],
    prepare: async () => ({ args: { p_customer_id: mine.customer } }),
    check: async (data) => {
      const held = await svcRows('bottles', { organization_id: ORG.a, current_customer_id: mine.customer, status: 'at_customer' }, 'bottle_type_id');
      const ledger = await svcRows('balance_adjustments', { organization_id: ORG.a, customer_id: mine.customer }, 'delta, bottle_type_id');
      assert.ok([...held, ...ledger].every((row) => row.bottle_type_id === ids.a.oxygen));
      const notScanned = ledger.reduce((sum, row) => sum + row.delta, 0);
      assert.deepEqual(data, [{
        bottle_type_id: ids.a.oxygen, product_code: 'OX200', scanned: held.length, not_scanned: notScanned, balance: held.length + notScanned,
      }]);
    },
    cross: () => [{ label: "B's customer", args: async () => ({ p_customer_id: ids.b.weld }), expect: refusedAs(NOT_FOUND) }],
    ownRefusals: (w) => (isDriver(w) ? [{ label: 'a customer on none of their stops', args: async () => ({ p_customer_id: mine.stranger }) }] : []),
  },
  {
    // SECURITY INVOKER: the caller's policies decide; a user without an organization sees nothing.
    name: 'aging_report', roles: ROLES, outsiderGetsNothing: true,
    prepare: async () => ({ args: { p_min_days: 100 } }),
    check: async (data) => {
      const listed = data.map((r) => r.bottle_id);
      assert.ok(listed.includes(mine.aged), 'the suite\'s 200-day-old custody is listed');
      assert.equal((await svcRows('bottles', { organization_id: ORG.a, id: listed }, 'id')).length, listed.length, 'only cylinders of A');
    },
    cross: () => [],
  },
  {
    name: 'soft_delete', label: 'soft_delete (customers)', roles: OWNER_ADMIN,
    ...onRow('customers', newCustomer(), (id) => ({ p_table: 'customers', p_id: id }), (row) => assert.notEqual(row.deleted_at, null)),
    cross: () => [
      { label: "B's customer", args: async () => ({ p_table: 'customers', p_id: ids.b.beer }), expect: refusedAs(NOT_FOUND) },
      { label: "B's cylinder", args: async () => ({ p_table: 'bottles', p_id: ids.b.sharedBottle }), expect: refusedAs(NOT_FOUND) },
    ],
  },
  {
    name: 'soft_delete', label: 'soft_delete (deliveries)', roles: OFFICE,
    ...onRow('deliveries', async () => (await ownDelivery()).id, (id) => ({ p_table: 'deliveries', p_id: id }), (row) => assert.notEqual(row.deleted_at, null)),
    cross: () => [
      { label: "B's delivery", args: async () => ({ p_table: 'deliveries', p_id: ids.b.d2 }), expect: refusedAs(NOT_FOUND) },
      { label: "B's route", args: async () => ({ p_table: 'routes', p_id: ids.b.route }), expect: refusedAs(NOT_FOUND) },
    ],
  },
  {
    name: 'restore', label: 'restore (customers)', roles: OWNER_ADMIN,
    ...onRow('customers', newCustomer({ deleted_at: new Date().toISOString() }), (id) => ({ p_table: 'customers', p_id: id }),
      (row) => assert.equal(row.deleted_at, null)),
    cross: () => [{ label: "B's deleted customer", args: async () => ({ p_table: 'customers', p_id: mine.bGone }), expect: refusedAs(NOT_FOUND) }],
  },
  {
    name: 'invite_member', roles: OWNER_ADMIN,
    prepare: async () => {
      const email = `${unique('iso-hire')}@iso.test`;
      return { args: { p_email: email, p_role: 'viewer' }, watch: () => svcRows('org_invitations', { email }) };
    },
    check: async (data, p) => {
      assert.match(data.token, /^[0-9a-f]{64}$/);
      assert.deepEqual((await p.watch()).map((row) => pick(row, ['organization_id', 'role', 'accepted_at'])),
        [{ organization_id: ORG.a, role: 'viewer', accepted_at: null }]);
    },
    cross: () => [],
  },
  {
    name: 'set_member_role', roles: OWNER_ADMIN,
    ...onMember('driver', (m) => ({ p_user_id: m.uid, p_role: 'plant' }), (profile, data) => {
      assert.equal(data.role, 'plant');
      assert.equal(profile.role, 'plant');
    }),
    cross: () => [{ label: "B's driver", args: async () => ({ p_user_id: userId('b', 'driver'), p_role: 'admin' }), expect: refusedAs(NOT_FOUND) }],
    ownRefusals: (w) => (w.role === 'admin' ? [
      { label: 'the owner', args: async () => ({ p_user_id: userId('a', 'owner'), p_role: 'viewer' }) },
      { label: 'making an owner', args: async () => ({ p_user_id: (await newMember('viewer')).uid, p_role: 'owner' }) },
    ] : []),
  },
  {
    name: 'deactivate_member', roles: OWNER_ADMIN,
    ...onMember('viewer', (m) => ({ p_user_id: m.uid }), (profile, data) => {
      assert.equal(data.is_active, false);
      assert.equal(profile.is_active, false);
    }),
    cross: () => [{ label: "B's driver", args: async () => ({ p_user_id: userId('b', 'driver') }), expect: refusedAs(NOT_FOUND) }],
    ownRefusals: (w) => (w.role === 'admin' ? [{ label: 'the owner', args: async () => ({ p_user_id: userId('a', 'owner') }) }] : []),
  },
];

for (const r of RPCS) {
  test(`rpc ${r.label ?? r.name}: ${r.roles.join(', ')} may call it; B's ids are refused and B is unchanged`, async () => {
    const bBefore = await snapshotB();
    for (const w of A_CALLERS) {
      const allowed = !w.anon && w.role !== undefined && r.roles.includes(w.role);
      const outsiderGetsNothing = w === NO_ORG && r.outsiderGetsNothing;
      const p = await r.prepare(w);
      const before = await p.watch?.();
      const res = await w.db.rpc(r.name, p.args);
      const what = `${w.label} calls ${r.label ?? r.name}`;
      if (allowed) {
        assert.equal(res.error, null, `${what}: ${JSON.stringify(res.error)}`);
        await r.check(res.data, p, w, before);
      } else if (outsiderGetsNothing) {
        assertRows(res, 0, what);
      } else {
        assertRefused(res, denied(w), what);
        if (p.watch) assert.deepEqual(await p.watch(), before, `${what}: nothing changed`);
      }
      for (const c of r.cross(w)) {
        const crossed = await w.db.rpc(r.name, await c.args());
        const label = `${what} with ${c.label}`;
        if (allowed) await c.expect(crossed, label);
        else if (outsiderGetsNothing) assertRows(crossed, 0, label);
        else assertRefused(crossed, denied(w), label);
      }
      for (const c of allowed ? r.ownRefusals?.(w) ?? [] : []) {
        assertRefused(await w.db.rpc(r.name, await c.args()), denied(w), `${what} for ${c.label}`);
      }
    }
    assert.deepEqual(await snapshotB(), bBefore, 'nothing of B changed');
  });
}

test('create_organization: members of A and B already have one; a newcomer gets their own and sees nothing of A or B', async () => {
  for (const w of [...A_MEMBERS, ...B_MEMBERS]) {
    assertRefused(await w.db.rpc('create_organization', { p_name: 'Second Gas', p_slug: unique('second') }),
      { status: 409, code: 'already_member' }, `${w.label} creates an organization`);
  }
  assertRefused(await ANON.db.rpc('create_organization', { p_name: 'Anon Gas', p_slug: unique('anon') }), denied(ANON), 'anon');

  const email = `${unique('iso-founder')}@iso.test`;
  const created = await client(SERVICE_ROLE_KEY).auth.admin.createUser({ email, password: 'iso-pass-1', email_confirm: true });
  assert.equal(created.error, null);
  const founder = userClient(created.data.user.id);
  const slug = unique('iso-founded');
  const org = ok(await founder.rpc('create_organization', { p_name: 'Founded Gas', p_slug: slug }));
  assert.equal(org.slug, slug);
  assert.deepEqual(await svcRows('profiles', { user_id: created.data.user.id }, 'organization_id, role'), [{ organization_id: org.id, role: 'owner' }]);
  // The new owner's organization is theirs alone: they see its owner and depot, nothing of A or B.
  assert.deepEqual(ok(await founder.from('organizations').select('id')), [{ id: org.id }]);
  assert.deepEqual(ok(await founder.from('profiles').select('user_id')), [{ user_id: created.data.user.id }]);
  assert.deepEqual(ok(await founder.from('locations').select('organization_id, name')), [{ organization_id: org.id, name: 'Main depot' }]);
  for (const table of ['customers', 'bottles', 'deliveries', 'bottle_events', 'rentals', 'customer_billing']) {
    assertRows(await founder.from(table).select('organization_id'), 0, `the new owner reads ${table}`);
  }
  assertRows(await founder.rpc('lookup_bottle', { p_code: 'SHARED-1' }), 0, 'the new owner looks up a shared barcode');
});

test("accept_invitation: only the invited email joins, with the invited role; nobody else takes the invitation", async () => {
  const email = `${unique('iso-invitee')}@iso.test`;
  const { token } = ok(await as('a', 'admin').rpc('invite_member', { p_email: email, p_role: 'plant' }));
  for (const w of [...A_MEMBERS, ...B_MEMBERS, NO_ORG]) {
    assertRefused(await w.db.rpc('accept_invitation', { p_token: token }), { status: 404, code: 'invitation_not_found' },
      `${w.label} accepts another person's invitation`);
  }
  assertRefused(await ANON.db.rpc('accept_invitation', { p_token: token }), denied(ANON), 'anon accepts');
  assert.equal((await svcOne('org_invitations', { email }, 'accepted_at')).accepted_at, null);

  const created = await client(SERVICE_ROLE_KEY).auth.admin.createUser({ email, password: 'iso-pass-1', email_confirm: true });
  assert.equal(created.error, null);
  const profile = ok(await userClient(created.data.user.id).rpc('accept_invitation', { p_token: token }));
  assert.deepEqual({ org: profile.organization_id, role: profile.role }, { org: ORG.a, role: 'plant' });
  assert.notEqual((await svcOne('org_invitations', { email }, 'accepted_at')).accepted_at, null);
});

test('the matrix covers every RPC that /rest/v1 exposes in public', async () => {
  const covered = new Set([...RPCS.map((r) => r.name), 'create_organization', 'accept_invitation']);
  assert.deepEqual(await exposed(true), [...covered].sort());
});
