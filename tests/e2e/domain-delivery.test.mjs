// Deliveries through the RPCs with the real supabase-js: complete_delivery is one transaction (a
// refused scan in the batch reports every code and writes nothing), its retry is harmless, closed
// stops take no more scans, proof-of-delivery paths stay under the delivery's folder; and another
// organization's ids passed to an RPC are refused without touching that organization. Runs in
// two private organizations (freshOrg), read back as service_role.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { bottle, eventsOf, freshOrg, ok, register, rentalsOf, service } from './domain.mjs';

let X;
let Y;

before(async () => {
  [X, Y] = await Promise.all([freshOrg(), freshOrg()]);
});

/** Rows of `table` in organization `org` where `column` = `value`, as service_role. */
async function rowsOf(table, org, column, value) {
  return ok(await service().from(table).select('*').eq('organization_id', org.id).eq(column, value)
    .order('id', { ascending: true }));
}

/** Everything of an organization that a delivery or a scan could write, as service_role. */
async function snapshot(org) {
  const all = async (table, order = 'id') =>
    ok(await service().from(table).select('*').eq('organization_id', org.id).order(order, { ascending: true }));
  return {
    bottles: await all('bottles'),
    events: await all('bottle_events'),
    rentals: await all('rentals'),
    deliveries: await all('deliveries'),
    items: await all('delivery_items'),
    ledger: await all('balance_adjustments'),
    exceptions: await all('scan_exceptions'),
    customers: await all('customers'),
    profiles: await all('profiles'),
  };
}

/** A refusal: the HTTP status, the error code and (optionally) the message. */
function refused(response, status, code, message) {
  assert.equal(response.data, null);
  assert.equal(response.status, status, JSON.stringify(response.error));
  assert.equal(response.error.code, code, JSON.stringify(response.error));
  if (message !== undefined) assert.equal(response.error.message, message);
}

const podPath = (org, deliveryId, file) => `${org.id}/deliveries/${deliveryId}/${file}`;

describe('complete_delivery', () => {
  test('a refused scan in the batch reports every code and writes nothing, then the fixed batch completes the stop', async () => {
    const driver = X.as('driver');
    const [g1, g2, r1, idle] = await register([
      { status: 'full' }, { status: 'full' }, { status: 'at_customer', customer_id: X.ids.weld }, { status: 'empty' },
    ], X.as('manager'));
    // The driver loads their route's truck.
    const loaded = ok(await driver.rpc('load_truck', { p_scans: [g1.code, g2.code], p_route_id: X.ids.route }));
    assert.equal(loaded.ok, 2);

    const before = await snapshot(X);
    // The device's clock: after the load (an earlier time would make these late offline scans).
    const deviceTime = new Date().toISOString();
    const args = {
      p_delivery_id: X.ids.d1,
      p_signed_by: 'Pat Welder',
      p_signature_path: podPath(X, X.ids.d1, 'signature.png'),
      p_photo_paths: [podPath(X, X.ids.d1, 'photo-1.jpg')],
      p_lat: 59.91,
      p_lng: 10.75,
      p_accuracy_m: 8,
      p_device_time: deviceTime,
      p_not_scanned: [{ product_code: 'OX200', returned: 1 }],
    };
    const response = await driver.rpc('complete_delivery', {
      ...args,
      p_delivered: [g1.code, 'NO-SUCH-CODE', idle.code],
      p_returned: [r1.code],
    });
    refused(response, 409, 'delivery_scans_refused', '2 of 4 scans were refused; nothing was recorded');
    assert.equal(response.error.hint, 'Fix or remove the refused codes and complete the delivery again');
    const { delivered, returned } = response.error.details;
    assert.deepEqual(delivered.map((r) => [r.index, r.code, r.ok, r.error ?? r.to_status]), [
      [0, g1.code, true, 'at_customer'],
      [1, 'NO-SUCH-CODE', false, 'unknown_code'],
      [2, idle.code, false, 'invalid_transition'],
    ]);
    assert.deepEqual(returned.map((r) => [r.index, r.code, r.ok, r.to_status]), [[0, r1.code, true, 'on_truck']]);
    // Not a cylinder moved, not an event, custody period, ledger line, order count or exception.
    assert.deepEqual(await snapshot(X), before);

    const completed = ok(await driver.rpc('complete_delivery', {
      ...args, p_delivered: [g1.code, g2.code], p_returned: [r1.code],
    }));
    assert.equal(completed.id, X.ids.d1);
    assert.equal(completed.status, 'completed');
    assert.equal(completed.signed_by_name, 'Pat Welder');
    assert.equal(completed.signature, args.p_signature_path);
    assert.deepEqual(completed.photos, args.p_photo_paths);
    assert.deepEqual([completed.pod_lat, completed.pod_lng, completed.pod_accuracy_m], [59.91, 10.75, 8]);
    assert.equal(new Date(completed.delivery_time).toISOString(), deviceTime);
    assert.notEqual(completed.completed_at, null);
    assert.equal(completed.delivered_count, 2);
    assert.equal(completed.returned_count, 2);

    for (const b of [g1, g2]) {
      const after = await bottle(b.id);
      assert.equal(after.status, 'at_customer');
      assert.equal(after.current_customer_id, X.ids.weld);
      const [rental] = (await rentalsOf(b.id)).filter((r) => r.ended_at === null);
      assert.equal(rental.customer_id, X.ids.weld);
    }
    const back = await bottle(r1.id);
    assert.equal(back.status, 'on_truck');
    assert.equal(back.current_vehicle_id, X.ids.truck);
    assert.equal((await rentalsOf(r1.id))[0].end_reason, 'returned');

    const events = await rowsOf('bottle_events', X, 'delivery_id', X.ids.d1);
    assert.deepEqual(events.map((e) => [e.bottle_id, e.event_type, e.route_id, e.actor_user_id]).sort(),
      [[g1.id, 'deliver', X.ids.route, X.userId('driver')], [g2.id, 'deliver', X.ids.route, X.userId('driver')],
        [r1.id, 'return', X.ids.route, X.userId('driver')]].sort());
    // The device's time is when the scans happened; the server's is when it heard of them.
    assert.ok(events.every((e) => new Date(e.occurred_at).toISOString() === deviceTime), JSON.stringify(events));
    const items = await rowsOf('delivery_items', X, 'delivery_id', X.ids.d1);
    assert.deepEqual(items.map((i) => [i.bottle_type_id, i.qty_ordered, i.qty_delivered, i.qty_returned]),
      [[X.ids.oxygen, 2, 2, 2]]);
    const ledger = await rowsOf('balance_adjustments', X, 'delivery_id', X.ids.d1);
    assert.deepEqual(ledger.map((l) => [l.customer_id, l.delta, l.reason]), [[X.ids.weld, -1, 'rns']]);

    // A retry (the driver's app lost the answer) returns the stop unchanged and records nothing.
    const settled = await snapshot(X);
    const retried = ok(await driver.rpc('complete_delivery', { ...args, p_delivered: [g1.code, g2.code], p_returned: [r1.code] }));
    assert.deepEqual(retried, completed);
    assert.deepEqual(await snapshot(X), settled);

    // A closed stop takes no more scans.
    const [late] = await register([{ status: 'full' }], X.as('manager'));
    const closed = await snapshot(X);
    refused(await X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [late.code], p_delivery_id: X.ids.d1 }),
      409, 'delivery_closed', 'the delivery is completed');
    refused(await X.as('manager').rpc('record_return', { p_customer_id: X.ids.weld, p_scans: [g1.code], p_delivery_id: X.ids.d1 }),
      409, 'delivery_closed', 'the delivery is completed');
    // Not-scanned quantities too: a closed stop's counts are fixed, and a stop's quantities
    // belong to its own customer.
    const lines = [{ product_code: 'OX200', delivered: 1 }];
    refused(await X.as('manager').rpc('record_not_scanned', { p_customer_id: X.ids.weld, p_lines: lines, p_delivery_id: X.ids.d1 }),
      409, 'delivery_closed', 'the delivery is completed');
    refused(await X.as('manager').rpc('record_not_scanned', { p_customer_id: X.ids.weld, p_lines: lines, p_delivery_id: X.ids.d2 }),
      422, 'customer_mismatch', 'the delivery is for another customer');
    assert.deepEqual(await rowsOf('balance_adjustments', X, 'delivery_id', X.ids.d2), []);
    assert.deepEqual(await snapshot(X), closed);
  });

  test('proof-of-delivery paths must be files under the delivery\'s own folder', async () => {
    const manager = X.as('manager');
    const deliveryId = ok(await manager.from('deliveries')
      .insert({ customer_id: X.ids.beer, delivery_number: `${X.slug}-POD` }).select('id').single()).id;
    const before = await snapshot(X);
    for (const path of [
      podPath(X, deliveryId, ''),
      `${X.id}/deliveries/${deliveryId}//signature.png`,
      `${X.id}/deliveries/${deliveryId}/../${X.ids.d2}/signature.png`,
      podPath(X, X.ids.d2, 'signature.png'),
      podPath(Y, deliveryId, 'signature.png'),
    ]) {
      refused(await manager.rpc('complete_delivery', { p_delivery_id: deliveryId, p_signature_path: path }),
        422, 'invalid_object_path');
      refused(await manager.rpc('fail_delivery', { p_delivery_id: deliveryId, p_reason: 'closed', p_photo_paths: [path] }),
        422, 'invalid_object_path', `${path} is not a file under ${X.id}/deliveries/${deliveryId}/`);
    }
    refused(await manager.rpc('complete_delivery', { p_delivery_id: deliveryId }), 422, 'signature_required');
    assert.deepEqual(await snapshot(X), before);
  });

  test('a failed stop is closed: no scans, no completion', async () => {
    const secondDriver = X.as('second driver');
    // D2 is the second driver's; the first driver may not touch it.
    refused(await X.as('driver').rpc('fail_delivery', { p_delivery_id: X.ids.d2, p_reason: 'gate locked' }), 403, '42501');

    const failed = ok(await secondDriver.rpc('fail_delivery', {
      p_delivery_id: X.ids.d2, p_reason: ' gate locked ', p_photo_paths: [podPath(X, X.ids.d2, 'gate.jpg')],
    }));
    assert.equal(failed.status, 'failed');
    assert.equal(failed.failure_reason, 'gate locked');
    assert.deepEqual(failed.photos, [podPath(X, X.ids.d2, 'gate.jpg')]);

    const [b] = await register([{ status: 'full' }], X.as('manager'));
    const before = await snapshot(X);
    refused(await X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.beer, p_scans: [b.code], p_delivery_id: X.ids.d2 }),
      409, 'delivery_closed', 'the delivery is failed');
    refused(await secondDriver.rpc('complete_delivery', {
      p_delivery_id: X.ids.d2, p_waive_reason: 'nobody there', p_delivered: [b.code],
    }), 409, 'delivery_closed', 'the delivery is failed');
    assert.deepEqual(await snapshot(X), before);
  });
});

describe("another organization's ids are refused by every RPC that takes them", () => {
  test('ids of Y passed to RPCs called by members of X', async () => {
    const [yFull, yAtCustomer] = await register([{ status: 'full' }, { status: 'at_customer', customer_id: Y.ids.weld }],
      Y.as('manager'));
    const [xFull] = await register([{ status: 'full' }], X.as('manager'));
    const yEvent = (await eventsOf(yFull.id))[0].id;
    const yBefore = await snapshot(Y);
    const manager = X.as('manager');
    const owner = X.as('owner');

    const notFound = (what, id) => `${what} ${id} not found in your organization`;
    refused(await manager.rpc('ship_bottles', { p_customer_id: Y.ids.weld, p_scans: [xFull.code] }),
      404, 'not_found', notFound('customer', Y.ids.weld));
    refused(await manager.rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [xFull.code], p_delivery_id: Y.ids.d1 }),
      404, 'not_found', notFound('delivery', Y.ids.d1));
    refused(await manager.rpc('record_return', { p_customer_id: Y.ids.weld, p_scans: [yAtCustomer.code] }),
      404, 'not_found', notFound('customer', Y.ids.weld));
    refused(await manager.rpc('load_truck', { p_scans: [xFull.code], p_vehicle_id: Y.ids.truck }),
      404, 'not_found', notFound('vehicle', Y.ids.truck));
    refused(await X.as('driver').rpc('load_truck', { p_scans: [xFull.code], p_route_id: Y.ids.route }),
      404, 'not_found', notFound('route', Y.ids.route));
    refused(await manager.rpc('transfer_bottles', { p_codes: [xFull.code], p_to_location_id: Y.ids.depot }),
      404, 'not_found', notFound('location', Y.ids.depot));
    refused(await manager.rpc('record_scans', { p_event_type: 'send_vendor', p_scans: [xFull.code], p_location_id: Y.ids.retester }),
      404, 'not_found', notFound('location', Y.ids.retester));
    refused(await manager.rpc('complete_delivery', { p_delivery_id: Y.ids.d1, p_waive_reason: 'x' }),
      404, 'not_found', notFound('delivery', Y.ids.d1));
    refused(await manager.rpc('fail_delivery', { p_delivery_id: Y.ids.d1, p_reason: 'x' }),
      404, 'not_found', notFound('delivery', Y.ids.d1));
    refused(await manager.rpc('record_not_scanned', { p_customer_id: Y.ids.weld, p_lines: [{ product_code: 'OX200', delivered: 1 }] }),
      404, 'not_found', notFound('customer', Y.ids.weld));
    refused(await manager.rpc('customer_balance', { p_customer_id: Y.ids.weld }), 404, 'not_found', notFound('customer', Y.ids.weld));
    refused(await manager.rpc('mark_found', { p_bottle_id: xFull.id, p_where: { customer_id: Y.ids.weld } }),
      404, 'not_found', notFound('customer', Y.ids.weld));
    refused(await manager.rpc('replay_bottle', { p_bottle_id: yFull.id }), 404, 'not_found', notFound('cylinder', yFull.id));
    refused(await owner.rpc('void_event', { p_event_id: yEvent, p_reason: 'x' }), 404, 'not_found', notFound('event', yEvent));
    refused(await owner.rpc('set_member_role', { p_user_id: Y.userId('driver'), p_role: 'viewer' }),
      404, 'not_found', notFound('member', Y.userId('driver')));
    refused(await owner.rpc('deactivate_member', { p_user_id: Y.userId('driver') }),
      404, 'not_found', notFound('member', Y.userId('driver')));
    refused(await owner.rpc('soft_delete', { p_table: 'customers', p_id: Y.ids.beer }),
      404, 'not_found', notFound('live row of customers', Y.ids.beer));

    // Cylinder ids of Y in a batch are unknown codes, one result each; Y's barcodes are not found.
    for (const [name, args] of [
      ['mark_lost', { p_bottle_ids: [yFull.id], p_reason: 'x' }],
      ['block_bottles', { p_bottle_ids: [yFull.id], p_reason: 'recall' }],
      ['unblock_bottles', { p_bottle_ids: [yFull.id] }],
      ['ship_bottles', { p_customer_id: X.ids.weld, p_scans: [{ bottle_id: yFull.id }, yFull.code] }],
      ['record_return', { p_customer_id: X.ids.weld, p_scans: [{ bottle_id: yAtCustomer.id }, yAtCustomer.code] }],
    ]) {
      const result = ok(await manager.rpc(name, args));
      assert.equal(result.ok, 0, name);
      assert.ok(result.results.length > 0);
      assert.ok(result.results.every((r) => r.ok === false && r.error === 'unknown_code'), `${name}: ${JSON.stringify(result)}`);
    }
    assert.deepEqual(ok(await manager.rpc('lookup_bottle', { p_code: yFull.code })), []);
    // The barcode both organizations use resolves to X's own cylinder only.
    const shared = ok(await manager.rpc('lookup_bottle', { p_code: 'SHARED-1' }));
    assert.deepEqual(shared.map((b) => b.id), [X.ids.sharedBottle]);

    // Registration: a row naming Y's customer, owner or location is refused alone.
    const rows = [
      { serial_number: 'XS-1', barcode_number: `${X.slug}-ok`, product_code: 'OX200' },
      { serial_number: 'XS-2', status: 'at_customer', customer_id: Y.ids.weld, product_code: 'OX200' },
      { serial_number: 'XS-3', ownership: 'customer', owner_customer_id: Y.ids.weld, product_code: 'OX200' },
      { serial_number: 'XS-4', location_id: Y.ids.depot, product_code: 'OX200' },
      { serial_number: 'XS-5', bottle_type_id: Y.ids.oxygen },
    ];
    const registration = ok(await manager.rpc('register_bottles', { p_rows: rows }));
    assert.equal(registration.inserted, 1);
    assert.equal(registration.failed, 4);
    assert.deepEqual(registration.results.map((r) => [r.index, r.ok, r.error ?? r.status]), [
      [0, true, 'ok'], [1, false, 'unknown_customer'], [2, false, 'unknown_customer'], [3, false, 'unknown_location'],
      [4, false, 'unknown_product'],
    ]);
    const registeredInX = ok(await service().from('bottles').select('serial_number').eq('organization_id', X.id)
      .in('serial_number', rows.map((r) => r.serial_number)));
    assert.deepEqual(registeredInX.map((r) => r.serial_number), ['XS-1']);

    // Y is exactly as it was.
    assert.deepEqual(await snapshot(Y), yBefore);
  });
});
