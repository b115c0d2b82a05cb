// The cylinder state machine (DOMAIN.md §4) through the RPCs, with the real supabase-js: every
// row of bottle_status_transitions applied by the RPC a client would call, with the cylinder's
// status, custody columns, custody periods and event log read back as service_role; a
// representative set of refused scans that change nothing; idempotent client event ids; late
// offline scans and voids. Everything runs in a private organization (freshOrg), so the other
// domain suites never see these cylinders move.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';

import { bottle, eventsOf, freshOrg, ok, register, rentalsOf, service } from './domain.mjs';

let X;
let branch2;

before(async () => {
  X = await freshOrg();
  branch2 = ok(await X.as('manager').from('locations').insert({ kind: 'branch', name: 'North depot' })
    .select('id').single()).id;
});

const REASON = 'checked by the test';

/** Registers one cylinder in X as its manager. */
async function registered(row) {
  const [b] = await register([row], X.as('manager'));
  return b;
}

/** A single-scan batch that went through from `from` to `to`. */
function applied(result, from, to) {
  assert.equal(result.failed, 0, JSON.stringify(result));
  assert.equal(result.ok, 1, JSON.stringify(result));
  assert.equal(result.results.length, 1);
  const [one] = result.results;
  assert.equal(one.ok, true);
  assert.equal(one.status, 'ok');
  assert.equal(one.from_status, from);
  assert.equal(one.to_status, to);
  return one;
}

const scans = (event, b, extra = {}) => X.as('manager').rpc('record_scans', { p_event_type: event, p_scans: [b.code], ...extra });
/** record_scans with one scan object ({code, id, …}) as the manager. */
const scanWith = (event, scanObject, extra = {}) =>
  X.as('manager').rpc('record_scans', { p_event_type: event, p_scans: [scanObject], ...extra });

/** How to put a fresh cylinder into each starting state, with the RPCs. */
const PREPARE = {
  empty: () => registered({ status: 'empty' }),
  full: () => registered({ status: 'full' }),
  at_customer: () => registered({ status: 'at_customer', customer_id: X.ids.weld }),
  on_truck: async () => {
    const b = await registered({ status: 'full' });
    applied(ok(await X.as('manager').rpc('load_truck', { p_scans: [b.code], p_vehicle_id: X.ids.truck })), 'full', 'on_truck');
    return b;
  },
  on_truck_empty: async () => {
    const b = await registered({ status: 'empty' });
    applied(ok(await X.as('manager').rpc('load_truck', { p_scans: [b.code], p_vehicle_id: X.ids.truck })), 'empty', 'on_truck');
    return b;
  },
  empty_medical: () => registered({ status: 'empty', product_code: 'MEDOX-E' }),
  quarantine: async () => {
    const b = await registered({ status: 'empty', product_code: 'MEDOX-E' });
    applied(ok(await scans('fill', b)), 'empty', 'quarantine');
    return b;
  },
  maintenance: async () => {
    const b = await registered({ status: 'empty' });
    applied(ok(await scans('to_maintenance', b)), 'empty', 'maintenance');
    return b;
  },
  at_vendor: async () => {
    const b = await registered({ status: 'empty' });
    applied(ok(await scans('send_vendor', b, { p_location_id: X.ids.retester })), 'empty', 'at_vendor');
    return b;
  },
  lost: async () => {
    const b = await registered({ status: 'full' });
    applied(ok(await X.as('manager').rpc('mark_lost', { p_bottle_ids: [b.id], p_reason: REASON })), 'full', 'lost');
    return b;
  },
  condemned: async () => {
    const b = await registered({ status: 'empty' });
    applied(ok(await scans('condemn', b, { p_reason: REASON })), 'empty', 'condemned');
    return b;
  },
  retired: async () => {
    const b = await registered({ status: 'empty' });
    applied(ok(await X.as('owner').rpc('record_scans', { p_event_type: 'retire', p_scans: [b.code], p_reason: REASON })),
      'empty', 'retired');
    return b;
  },
};

const CUSTODY = ['current_customer_id', 'current_vehicle_id', 'current_location_id'];
const custodyOf = (row) => Object.fromEntries(CUSTODY.map((c) => [c, row[c]]));
const at = {
  customer: (id) => ({ current_customer_id: id, current_vehicle_id: null, current_location_id: null }),
  truck: () => ({ current_customer_id: null, current_vehicle_id: X.ids.truck, current_location_id: null }),
  place: (id) => ({ current_customer_id: null, current_vehicle_id: null, current_location_id: id }),
  nowhere: () => ({ current_customer_id: null, current_vehicle_id: null, current_location_id: null }),
};
/** Where a cylinder that just reached `status` should be, when the case does not say. */
function defaultCustody(status) {
  switch (status) {
    case 'at_customer': return at.customer(X.ids.weld);
    case 'on_truck': return at.truck();
    case 'lost': case 'retired': return at.nowhere();
    case 'at_vendor': return at.place(X.ids.retester);
    default: return at.place(X.ids.depot);
  }
}

const mgr = (name, args) => (b) => X.as('manager').rpc(name, typeof args === 'function' ? args(b) : args);
const byOwner = (event, extra = {}) => (b) => X.as('owner').rpc('record_scans', { p_event_type: event, p_scans: [b.code], ...extra });
// `extra` may be a function, for arguments that name X's rows (X exists only once `before` ran).
const scan = (event, extra = {}) => (b) => scans(event, b, typeof extra === 'function' ? extra() : extra);
const ids = (name, extra = {}) => mgr(name, (b) => ({ p_bottle_ids: [b.id], ...extra }));

// Each allowed transition: the RPC that performs it and, when it matters, the custody it leaves
// (`same`: unchanged), the custody period it closes (`closes`) and what else it sets (`sets`).
const ALLOWED = [
  ['fill', 'empty', 'full', scan('fill'), { sets: { fill_state: 'full' } }],
  ['fill', 'empty', 'quarantine', scan('fill'), { prepare: 'empty_medical', sets: { fill_state: 'full' } }],
  ['release', 'quarantine', 'full', scan('release')],
  ['reject_lot', 'quarantine', 'empty', scan('reject_lot'), { sets: { fill_state: 'empty' } }],
  ['load', 'full', 'on_truck', mgr('load_truck', (b) => ({ p_scans: [b.code], p_vehicle_id: X.ids.truck })), { sets: { fill_state: 'full' } }],
  ['load', 'empty', 'on_truck', mgr('load_truck', (b) => ({ p_scans: [b.code], p_vehicle_id: X.ids.truck })), { sets: { fill_state: 'empty' } }],
  ['unload', 'on_truck', 'full', mgr('unload_truck', (b) => ({ p_scans: [b.code], p_vehicle_id: X.ids.truck }))],
  ['unload', 'on_truck', 'empty', mgr('unload_truck', (b) => ({ p_scans: [b.code], p_vehicle_id: X.ids.truck })), { prepare: 'on_truck_empty' }],
  ['deliver', 'on_truck', 'at_customer', mgr('ship_bottles', (b) => ({ p_customer_id: X.ids.weld, p_scans: [b.code] }))],
  ['deliver', 'full', 'at_customer', mgr('ship_bottles', (b) => ({ p_customer_id: X.ids.weld, p_scans: [b.code] }))],
  ['return', 'at_customer', 'on_truck',
    mgr('record_return', (b) => ({ p_customer_id: X.ids.weld, p_scans: [b.code], p_vehicle_id: X.ids.truck })),
    { closes: 'returned', sets: { fill_state: 'empty' } }],
  ['return', 'at_customer', 'empty', mgr('record_return', (b) => ({ p_customer_id: X.ids.weld, p_scans: [b.code] })),
    { closes: 'returned' }],
  ['return', 'at_customer', 'full',
    mgr('record_return', (b) => ({ p_customer_id: X.ids.weld, p_scans: [b.code], p_fill_state: 'full', p_location_id: branch2 })),
    { closes: 'returned', custody: () => at.place(branch2) }],
  ['transfer_customer', 'at_customer', 'at_customer', scan('transfer_customer', () => ({ p_customer_id: X.ids.beer })),
    { closes: 'transferred', custody: () => at.customer(X.ids.beer) }],
  ...['empty', 'full', 'maintenance'].map((s) => ['transfer_location', s, s,
    mgr('transfer_bottles', (b) => ({ p_codes: [b.code], p_to_location_id: branch2 })), { custody: () => at.place(branch2) }]),
  ...['at_customer', 'on_truck', 'empty', 'full'].map((s) => ['mark_lost', s, 'lost', ids('mark_lost', { p_reason: REASON }),
    s === 'at_customer' ? { closes: 'lost' } : {}]),
  ['found', 'lost', 'at_customer', mgr('mark_found', (b) => ({ p_bottle_id: b.id, p_where: { customer_id: X.ids.beer } })),
    { custody: () => at.customer(X.ids.beer) }],
  ['found', 'lost', 'empty', mgr('mark_found', (b) => ({ p_bottle_id: b.id, p_where: {} }))],
  ['found', 'lost', 'full', mgr('mark_found', (b) => ({ p_bottle_id: b.id, p_where: { fill_state: 'full', location_id: branch2 } })),
    { custody: () => at.place(branch2) }],
  ...['empty', 'full', 'condemned'].map((s) => ['to_maintenance', s, 'maintenance', scan('to_maintenance')]),
  ['from_maintenance', 'maintenance', 'empty', scan('from_maintenance')],
  ...['empty', 'maintenance'].map((s) => ['send_vendor', s, 'at_vendor', scan('send_vendor', () => ({ p_location_id: X.ids.retester }))]),
  ['receive_vendor', 'at_vendor', 'empty', scan('receive_vendor', () => ({ p_location_id: X.ids.depot }))],
  ['receive_vendor', 'at_vendor', 'full', scan('receive_vendor', () => ({ p_location_id: X.ids.depot, p_fill_state: 'full' })),
    { sets: { fill_state: 'full' } }],
  ...['maintenance', 'at_vendor', 'empty'].map((s) => ['inspect_pass', s, 'empty',
    scan('inspect_pass', () => ({ p_location_id: X.ids.depot, p_data: { performed_on: '2025-01-15', next_due_date: '2030-01-31' } })),
    { sets: { last_inspection_date: '2025-01-15', next_inspection_date: '2030-01-31' } }]),
  ...['empty', 'full', 'quarantine', 'on_truck', 'at_customer', 'maintenance', 'at_vendor'].map((s) => ['condemn', s, 'condemned',
    scan('condemn', { p_reason: REASON }), {
      // Condemned where it stands; coming from a truck, a customer or a vendor it has no depot.
      custody: () => (['on_truck', 'at_customer', 'at_vendor'].includes(s) ? at.nowhere() : at.place(X.ids.depot)),
      closes: s === 'at_customer' ? 'condemned' : undefined,
    }]),
  ...['condemned', 'empty', 'full', 'lost'].map((s) => ['retire', s, 'retired', byOwner('retire', { p_reason: REASON })]),
  // Status-keeping events: a sighting (any active cylinder), an ownership change, a block or
  // unblock (any cylinder still in the fleet).
  ...['locate', 'audit_seen'].flatMap((event) => ['empty', 'full', 'quarantine', 'on_truck', 'at_customer', 'maintenance', 'at_vendor']
    .map((s) => [event, s, s, (b) => X.as('driver').rpc('record_scans', { p_event_type: event, p_scans: [b.code] }), { same: true }])),
  ...['empty', 'full', 'quarantine', 'on_truck', 'at_customer', 'maintenance', 'at_vendor', 'lost', 'condemned'].flatMap((s) => [
    ['change_ownership', s, s, byOwner('change_ownership', { p_data: { ownership: s === 'at_customer' ? 'customer' : 'leased_in' } }), {
      same: true,
      closes: s === 'at_customer' ? 'sold' : undefined,
      sets: s === 'at_customer' ? { ownership: 'customer', owner_customer_id: () => X.ids.weld } : { ownership: 'leased_in' },
    }],
    ['block', s, s, ids('block_bottles', { p_reason: 'recall' }), { same: true, sets: { is_blocked: true, blocked_reason: 'recall' } }],
    ['unblock', s, s, ids('unblock_bottles'), {
      same: true,
      before: async (b) => applied(ok(await X.as('manager').rpc('block_bottles', { p_bottle_ids: [b.id], p_reason: 'hold' })), s, s),
      sets: { is_blocked: false, blocked_reason: null },
    }],
  ]),
];

describe('every allowed transition of DOMAIN.md §4, through the RPCs', () => {
  test('the cases cover every row of bottle_status_transitions', async () => {
    const rows = ok(await service().from('bottle_status_transitions').select('event_type,from_status,to_status'));
    const key = (event, from, to) => `${event}: ${from ?? '(none)'} -> ${to}`;
    const covered = new Set([
      ...ALLOWED.map(([event, from, to]) => key(event, from, to)),
      ...['empty', 'full', 'at_customer'].map((s) => key('register', null, s)),
    ]);
    const table = new Set(rows.map((r) => key(r.event_type, r.from_status, r.to_status)));
    assert.deepEqual([...table].filter((k) => !covered.has(k)), []);
    assert.deepEqual([...covered].filter((k) => !table.has(k)), []);
  });

  for (const status of ['empty', 'full', 'at_customer']) {
    test(`register: (none) -> ${status}`, async () => {
      const row = status === 'at_customer' ? { status, customer_id: X.ids.weld } : { status };
      const b = await registered(row);
      const after = await bottle(b.id);
      assert.equal(after.status, status);
      assert.deepEqual(custodyOf(after), defaultCustody(status));
      const events = await eventsOf(b.id);
      assert.equal(events.length, 1);
      assert.equal(events[0].event_type, 'register');
      assert.equal(events[0].from_status, null);
      assert.equal(events[0].to_status, status);
      assert.equal(events[0].applied, true);
      assert.equal(events[0].actor_user_id, X.userId('manager'));
      assert.equal(after.last_event_id, events[0].id);
      const rentals = await rentalsOf(b.id);
      if (status === 'at_customer') {
        assert.equal(rentals.length, 1);
        assert.equal(rentals[0].customer_id, X.ids.weld);
        assert.equal(rentals[0].status, 'active');
        assert.equal(rentals[0].ended_at, null);
        assert.equal(rentals[0].start_event_id, events[0].id);
      } else {
        assert.deepEqual(rentals, []);
      }
    });
  }

  for (const [event, from, to, act, options = {}] of ALLOWED) {
    test(`${event}: ${from} -> ${to}`, async () => {
      const b = await PREPARE[options.prepare ?? from]();
      if (options.before) await options.before(b);
      const before = await bottle(b.id);
      assert.equal(before.status, from);
      const eventsBefore = await eventsOf(b.id);
      const rentalsBefore = await rentalsOf(b.id);

      const result = ok(await (options.act ?? act)(b));
      const reported = applied(result, from, to);

      const after = await bottle(b.id);
      assert.equal(after.status, to);
      const expected = options.same ? custodyOf(before) : (options.custody ?? (() => defaultCustody(to)))();
      assert.deepEqual(custodyOf(after), expected);
      for (const [column, value] of Object.entries(options.sets ?? {})) {
        assert.deepEqual(after[column], typeof value === 'function' ? value() : value, column);
      }

      // Exactly one new event, stamped with what it did and who did it.
      const events = await eventsOf(b.id);
      assert.equal(events.length, eventsBefore.length + 1);
      const last = events.at(-1);
      assert.equal(last.id, reported.event_id);
      assert.equal(last.event_type, event);
      assert.equal(last.from_status, from);
      assert.equal(last.to_status, to);
      assert.equal(last.applied, true);
      assert.equal(last.voided, false);
      assert.equal(after.last_event_id, last.id);
      assert.equal(after.fill_state, last.fill_state_after);

      // Custody periods: open exactly while the cylinder is at a customer.
      const rentals = await rentalsOf(b.id);
      const open = rentals.filter((r) => r.ended_at === null && r.status === 'active');
      if (to === 'at_customer') {
        assert.equal(open.length, 1);
        assert.equal(open[0].customer_id, after.current_customer_id);
      } else {
        assert.equal(open.length, 0);
      }
      if (options.closes) {
        const closed = rentals.find((r) => r.id === rentalsBefore.find((x) => x.ended_at === null).id);
        assert.equal(closed.end_reason, options.closes);
        assert.equal(closed.end_event_id, last.id);
        assert.equal(closed.status, options.closes === 'lost' ? 'lost' : 'closed');
      } else if (from !== 'at_customer' || to === 'at_customer') {
        // Nothing closed that was open before, beyond what the case says.
        assert.deepEqual(rentals.slice(0, rentalsBefore.length).map((r) => r.ended_at),
          rentalsBefore.map((r) => r.ended_at));
      }
    });
  }

  test('adjust: an owner moves a cylinder at a customer back to the depot, closing its custody', async () => {
    const b = await PREPARE.at_customer();
    const result = ok(await X.as('owner').rpc('record_scans', {
      p_event_type: 'adjust', p_scans: [b.code], p_location_id: X.ids.depot, p_reason: 'found in the yard',
      p_data: { requested_status: 'empty' },
    }));
    applied(result, 'at_customer', 'empty');
    const after = await bottle(b.id);
    assert.equal(after.status, 'empty');
    assert.deepEqual(custodyOf(after), at.place(X.ids.depot));
    const [rental] = await rentalsOf(b.id);
    assert.equal(rental.end_reason, 'adjusted');
    const last = (await eventsOf(b.id)).at(-1);
    assert.equal(last.event_type, 'adjust');
    assert.equal(last.data.reason, 'found in the yard');
  });

  test('void_event: voiding a delivery replays the cylinder back to the depot and voids its custody', async () => {
    const b = await PREPARE.full();
    const shipped = applied(ok(await X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [b.code] })),
      'full', 'at_customer');
    const replay = ok(await X.as('admin').rpc('void_event', { p_event_id: shipped.event_id, p_reason: 'scanned at the wrong stop' }));
    assert.deepEqual(replay, { bottle_id: b.id, status: 'full', applied: 1, refused: 0 });

    const after = await bottle(b.id);
    assert.equal(after.status, 'full');
    assert.deepEqual(custodyOf(after), at.place(X.ids.depot));
    const events = await eventsOf(b.id);
    assert.deepEqual(events.map((e) => [e.event_type, e.voided]), [['register', false], ['deliver', true], ['void', false]]);
    assert.equal(events[2].void_of, shipped.event_id);
    const rentals = await rentalsOf(b.id);
    assert.deepEqual(rentals.map((r) => r.status), ['voided']);
  });
});

// Refused scans: the per-code result names the reason, the cylinder, its events and custody stay
// as they were, and the office gets an open scan exception for that scan's event id.
const REFUSED = [
  ['fill on a full cylinder', 'full', (b, s) => scanWith('fill', s), 'invalid_transition'],
  ['release of a cylinder that is not in quarantine', 'empty', (b, s) => scanWith('release', s), 'invalid_transition'],
  ['load of a cylinder at a customer', 'at_customer',
    (b, s) => X.as('manager').rpc('load_truck', { p_scans: [s], p_vehicle_id: X.ids.truck }), 'invalid_transition'],
  ['deliver of an empty cylinder still at the depot', 'empty',
    (b, s) => X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [s] }), 'invalid_transition'],
  ['return of a cylinder that is at the depot', 'full',
    (b, s) => X.as('manager').rpc('record_return', { p_customer_id: X.ids.weld, p_scans: [s] }), 'invalid_transition'],
  ['load of a retired cylinder', 'retired',
    (b, s) => X.as('manager').rpc('load_truck', { p_scans: [s], p_vehicle_id: X.ids.truck }), 'invalid_transition'],
  ['condemn of a lost cylinder', 'lost', (b, s) => scanWith('condemn', s, { p_reason: REASON }), 'invalid_transition'],
  ['retire of a cylinder at a customer', 'at_customer',
    (b, s) => X.as('owner').rpc('record_scans', { p_event_type: 'retire', p_scans: [s], p_reason: REASON }), 'invalid_transition'],
  ['fill of a blocked cylinder', 'blocked_empty', (b, s) => scanWith('fill', s), 'blocked'],
  ['deliver of a blocked full cylinder', 'blocked_full',
    (b, s) => X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [s] }), 'blocked'],
  ['fill of a cylinder past its requalification month', 'out_of_test', (b, s) => scanWith('fill', s), 'out_of_test'],
  ['condemn without a reason', 'empty', (b, s) => scanWith('condemn', s), 'reason_required'],
  ['receive from a vendor without saying where to', 'at_vendor', (b, s) => scanWith('receive_vendor', s), 'location_required'],
  ['send to a vendor that is a branch', 'empty', (b, s) => scanWith('send_vendor', s, { p_location_id: X.ids.depot }), 'invalid_scan'],
  ['transfer to the customer that holds it', 'at_customer',
    (b, s) => scanWith('transfer_customer', s, { p_customer_id: X.ids.weld }), 'invalid_scan'],
];
const EXCEPTION_REASONS = new Set(['unknown_code', 'duplicate_match', 'invalid_transition', 'blocked', 'out_of_test', 'wrong_org']);

describe('refused scans change nothing and are reported per code', () => {
  const prepareRefused = {
    ...PREPARE,
    blocked_empty: async () => {
      const b = await PREPARE.empty();
      ok(await X.as('plant').rpc('block_bottles', { p_bottle_ids: [b.id], p_reason: 'recall' }));
      return b;
    },
    blocked_full: async () => {
      const b = await PREPARE.full();
      ok(await X.as('manager').rpc('block_bottles', { p_bottle_ids: [b.id], p_reason: 'complaint' }));
      return b;
    },
    out_of_test: () => registered({ status: 'empty', last_inspection_date: '2015-01-31', next_inspection_date: '2020-01-31' }),
  };

  for (const [name, start, act, error] of REFUSED) {
    test(name, async () => {
      const b = await prepareRefused[start]();
      const before = await bottle(b.id);
      const eventsBefore = await eventsOf(b.id);
      const rentalsBefore = await rentalsOf(b.id);
      const eventId = randomUUID();

      const result = ok(await act(b, { code: b.code, id: eventId }));
      assert.equal(result.ok, 0);
      assert.equal(result.failed, 1);
      assert.equal(result.results[0].ok, false);
      assert.equal(result.results[0].status, 'error');
      assert.equal(result.results[0].error, error, result.results[0].message);
      assert.equal(result.results[0].code, b.code);

      assert.deepEqual(await bottle(b.id), before);
      assert.deepEqual(await eventsOf(b.id), eventsBefore);
      assert.deepEqual(await rentalsOf(b.id), rentalsBefore);
      const exceptions = ok(await service().from('scan_exceptions').select('*').eq('event_id', eventId));
      assert.equal(exceptions.length, 1);
      assert.equal(exceptions[0].organization_id, X.id);
      assert.equal(exceptions[0].raw_code, b.code);
      assert.equal(exceptions[0].status, 'open');
      assert.equal(exceptions[0].reason, EXCEPTION_REASONS.has(error) ? error : 'invalid_scan');
    });
  }

  test('a batch applies the good codes and reports the bad ones by index', async () => {
    const [good, bad] = await register([{ status: 'full' }, { status: 'empty' }], X.as('manager'));
    const result = ok(await X.as('manager').rpc('record_scans', {
      p_event_type: 'fill', p_scans: [bad.code, 'NO-SUCH-CODE', good.code, { bottle_id: bad.id }],
    }));
    assert.equal(result.ok, 1);
    assert.equal(result.failed, 3);
    assert.deepEqual(result.results.map((r) => [r.index, r.code, r.ok, r.error ?? r.to_status]), [
      [0, bad.code, true, 'full'],
      [1, 'NO-SUCH-CODE', false, 'unknown_code'],
      [2, good.code, false, 'invalid_transition'],
      [3, bad.id, false, 'invalid_transition'],
    ]);
    assert.equal((await bottle(bad.id)).status, 'full');
    assert.equal((await bottle(good.id)).status, 'full');
  });

  test('record_scans refuses the movements that have their own RPC', async () => {
    const b = await PREPARE.full();
    for (const event of ['deliver', 'return', 'load', 'unload', 'mark_lost', 'found', 'block', 'unblock', 'transfer_location']) {
      const { data, error } = await X.as('owner').rpc('record_scans', { p_event_type: event, p_scans: [b.code] });
      assert.equal(data, null);
      assert.equal(error.code, '22023', event);
      assert.equal(error.message, `record_scans does not take ${event} events; use its own RPC`);
    }
    assert.equal((await eventsOf(b.id)).length, 1);
  });
});

describe('client event ids make retries safe', () => {
  test('a retried scan answers duplicate and records one event and one custody period', async () => {
    const b = await PREPARE.full();
    const id = randomUUID();
    const call = () => X.as('manager').rpc('ship_bottles', { p_customer_id: X.ids.weld, p_scans: [{ code: b.code, id }] });
    const first = applied(ok(await call()), 'full', 'at_customer');
    assert.equal(first.event_id, id);

    const again = ok(await call());
    assert.equal(again.failed, 0);
    assert.deepEqual(again.results.map((r) => [r.ok, r.status, r.event_id, r.from_status, r.to_status]),
      [[true, 'duplicate', id, 'full', 'at_customer']]);
    const events = await eventsOf(b.id);
    assert.deepEqual(events.map((e) => e.id), [events[0].id, id]);
    assert.equal((await rentalsOf(b.id)).length, 1);
    assert.equal((await bottle(b.id)).last_event_id, id);
  });

  test('an event id reused for another cylinder is refused', async () => {
    const [first, second] = await register([{ status: 'full' }, { status: 'full' }], X.as('manager'));
    const id = randomUUID();
    const seen = ok(await X.as('manager').rpc('record_scans', { p_event_type: 'locate', p_scans: [{ code: first.code, id }] }));
    applied(seen, 'full', 'full');
    const reused = ok(await X.as('manager').rpc('record_scans', { p_event_type: 'locate', p_scans: [{ code: second.code, id }] }));
    assert.equal(reused.results[0].ok, false);
    assert.equal(reused.results[0].error, 'id_conflict');
    assert.equal((await eventsOf(second.id)).length, 1);
  });

  test('a retried registration with the client id answers duplicate and adds no cylinder', async () => {
    const id = randomUUID();
    const row = { id, serial_number: `SN-${id.slice(0, 8)}`, barcode_number: `BC-${id.slice(0, 8)}`, product_code: 'OX200' };
    const first = ok(await X.as('manager').rpc('register_bottles', { p_rows: [row] }));
    assert.deepEqual(first.results, [{ index: 0, ok: true, status: 'ok', bottle_id: id }]);
    const again = ok(await X.as('manager').rpc('register_bottles', { p_rows: [row] }));
    assert.equal(again.inserted, 0);
    assert.deepEqual(again.results, [{ index: 0, ok: true, status: 'duplicate', bottle_id: id, error: null }]);
    const rows = ok(await service().from('bottles').select('id').eq('serial_number', row.serial_number));
    assert.equal(rows.length, 1);
    assert.equal((await eventsOf(id)).length, 1);
  });

  test('a late offline scan is stored unapplied, flagged, and folded in by a replay', async () => {
    const b = await PREPARE.full();
    const registeredAt = (await bottle(b.id)).last_event_at;
    applied(ok(await X.as('manager').rpc('load_truck', { p_scans: [b.code], p_vehicle_id: X.ids.truck })), 'full', 'on_truck');
    // A locate scanned before the load, synced after it.
    const lateId = randomUUID();
    const lateAt = new Date(new Date(registeredAt).getTime() + 1).toISOString();
    const late = ok(await X.as('driver').rpc('record_scans', {
      p_event_type: 'locate', p_scans: [{ code: b.code, id: lateId, occurred_at: lateAt }],
    }));
    assert.deepEqual(late.results.map((r) => [r.ok, r.status, r.applied, r.warnings]), [[true, 'late', false, ['late_event']]]);
    const stored = (await eventsOf(b.id)).find((e) => e.id === lateId);
    assert.equal(stored.applied, false);
    const [flag] = ok(await service().from('scan_exceptions').select('reason,status').eq('event_id', lateId));
    assert.deepEqual(flag, { reason: 'late_event', status: 'open' });
    assert.equal((await bottle(b.id)).status, 'on_truck');

    assert.deepEqual(ok(await X.as('manager').rpc('replay_bottle', { p_bottle_id: b.id })),
      { bottle_id: b.id, status: 'on_truck', applied: 3, refused: 0 });
    const replayed = (await eventsOf(b.id)).find((e) => e.id === lateId);
    assert.equal(replayed.applied, true);
    assert.deepEqual(ok(await service().from('scan_exceptions').select('reason,status').eq('event_id', lateId)),
      [{ reason: 'late_event', status: 'resolved' }]);
    assert.deepEqual(custodyOf(await bottle(b.id)), at.truck());
  });
});
