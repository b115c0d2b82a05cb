// Realtime with the real supabase-js: postgres_changes (payloads, filters, tenant isolation,
// token refresh and expiry), broadcast (self, ack, HTTP), presence (track, untrack, leave),
// private channels, realtime.broadcast_changes() from a row trigger, and both serializers.
// Fixture: fixtures/0030_realtime.sql.
import { randomUUID } from 'node:crypto';
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { ANON_KEY, API_URL, SERVICE_ROLE_KEY, client, signJwt } from './env.mjs';

const WAIT_MS = 15000;
const clients = [];

after(async () => {
  await Promise.all(clients.map((c) => c.removeAllChannels()));
});

/** A client whose realtime token is whatever `holder.token` is when asked. */
function realtimeClient(holder, options = {}) {
  const c = client(ANON_KEY, { accessToken: async () => holder.token, ...options });
  clients.push(c);
  return c;
}

function memberToken(org, extra = {}) {
  return signJwt({ sub: randomUUID(), role: 'authenticated', organization_id: org, ...extra });
}

/** Events pushed by callbacks, awaited in order with a timeout. */
class Inbox {
  constructor() {
    this.items = [];
    this.waiters = [];
  }
  push = (item) => {
    const index = this.waiters.findIndex((w) => w.match(item));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      waiter.resolve(item);
    } else {
      this.items.push(item);
    }
  };
  next(match = () => true, what = 'event') {
    const index = this.items.findIndex(match);
    if (index >= 0) return Promise.resolve(this.items.splice(index, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve };
      this.waiters.push(waiter);
      setTimeout(() => {
        const at = this.waiters.indexOf(waiter);
        if (at >= 0) {
          this.waiters.splice(at, 1);
          reject(new Error(`timed out waiting for ${what}`));
        }
      }, WAIT_MS).unref();
    });
  }
}

/**
 * Subscribes and resolves on SUBSCRIBED; rejects on the first error status. The join carries
 * whatever token the client holds when `subscribe()` is called, and realtime-js fetches the
 * `accessToken` callback's token asynchronously, so (as Supabase's Realtime Authorization docs
 * say) `realtime.setAuth()` is awaited first; otherwise the join runs with the apikey's role.
 */
async function subscribe(channel, onStatus = () => {}) {
  await channel.socket.setAuth();
  return new Promise((resolve, reject) => {
    channel.subscribe((status, error) => {
      onStatus(status, error);
      if (status === 'SUBSCRIBED') resolve();
      else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') reject(error ?? new Error(status));
    });
  });
}

/** A REST client acting as a member of `org`. */
function restAs(org) {
  const token = memberToken(org);
  return client(ANON_KEY, { accessToken: async () => token });
}

async function insertDelivery(org, row) {
  const { data, error } = await restAs(org)
    .from('rt_e2e_deliveries')
    .insert({ organization_id: org, ...row })
    .select()
    .single();
  assert.equal(error, null);
  return data;
}

function changesChannel(c, name, bindings, inbox) {
  let channel = c.channel(name);
  for (const binding of bindings) {
    channel = channel.on('postgres_changes', binding, (payload) => inbox.push({ binding, payload }));
  }
  return channel;
}

describe('postgres_changes', () => {
  test('INSERT, UPDATE and DELETE by another client arrive with the Supabase payload', async () => {
    const org = randomUUID();
    const holder = { token: memberToken(org) };
    const inbox = new Inbox();
    const channel = changesChannel(
      realtimeClient(holder),
      `changes-${org}`,
      [{ event: '*', schema: 'public', table: 'rt_e2e_deliveries' }],
      inbox,
    );
    await subscribe(channel);

    const inserted = await insertDelivery(org, {
      status: 'planned', driver: 'ana', qty: 3, price: 12.5, scheduled: '2025-11-03',
      urgent: true, meta: { gate: 4, tags: ['a'] },
    });
    const insert = (await inbox.next(() => true, 'INSERT')).payload;
    assert.equal(insert.eventType, 'INSERT');
    assert.equal(insert.schema, 'public');
    assert.equal(insert.table, 'rt_e2e_deliveries');
    assert.equal(insert.errors, null);
    assert.match(insert.commit_timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(insert.old, {});
    const { created_at: createdAt, ...rest } = insert.new;
    const { created_at: expectedCreatedAt, ...expected } = inserted;
    assert.deepEqual(rest, expected);
    assert.equal(new Date(createdAt).getTime(), new Date(expectedCreatedAt).getTime());

    const { error: updateError } = await restAs(org)
      .from('rt_e2e_deliveries').update({ status: 'loaded' }).eq('id', inserted.id);
    assert.equal(updateError, null);
    const update = (await inbox.next(() => true, 'UPDATE')).payload;
    assert.equal(update.eventType, 'UPDATE');
    assert.equal(update.new.status, 'loaded');
    assert.equal(update.old.status, 'planned');
    assert.equal(update.old.id, inserted.id);

    const { error: deleteError } = await restAs(org)
      .from('rt_e2e_deliveries').delete().eq('id', inserted.id);
    assert.equal(deleteError, null);
    const remove = (await inbox.next(() => true, 'DELETE')).payload;
    assert.equal(remove.eventType, 'DELETE');
    assert.deepEqual(remove.new, {});
    assert.equal(remove.old.id, inserted.id);
    assert.equal(remove.old.status, 'loaded');
  });

  test('every filter operator selects exactly the matching rows', async () => {
    const org = randomUUID();
    const holder = { token: memberToken(org) };
    const c = realtimeClient(holder);
    const table = { event: 'INSERT', schema: 'public', table: 'rt_e2e_deliveries' };
    const filters = {
      eq: 'qty=eq.5', neq: 'status=neq.planned', lt: 'qty=lt.5', lte: 'qty=lte.5',
      gt: 'price=gt.10', gte: 'scheduled=gte.2025-06-01', in: 'driver=in.(ana,"b,c")',
      like: 'driver=like.an%', ilike: 'driver=ilike.AN%', is: 'urgent=is.null',
      and: 'qty=gt.1,qty=lt.9',
    };
    const inbox = new Inbox();
    const channel = Object.entries(filters).reduce(
      (ch, [name, filter]) =>
        ch.on('postgres_changes', { ...table, filter }, (p) => inbox.push({ name, id: p.new.id })),
      c.channel(`filters-${org}`),
    );
    await subscribe(channel);
    const rows = [
      { status: 'planned', driver: 'ana', qty: 5, price: 9, scheduled: '2025-01-01', urgent: true },
      { status: 'loaded', driver: 'b,c', qty: 1, price: 10.5, scheduled: '2025-06-01', urgent: null },
      { status: 'planned', driver: 'Andy', qty: 9, price: 10, scheduled: '2025-12-31', urgent: false },
    ];
    const ids = [];
    for (const row of rows) ids.push((await insertDelivery(org, row)).id);
    const expected = {
      eq: [0], neq: [1], lt: [1], lte: [0, 1], gt: [1], gte: [1, 2], in: [0, 1],
      like: [0], ilike: [0, 2], is: [1], and: [0],
    };
    const total = Object.values(expected).reduce((n, list) => n + list.length, 0);
    const got = {};
    for (let i = 0; i < total; i++) {
      const { name, id } = await inbox.next(() => true, `filter delivery ${i + 1}/${total}`);
      (got[name] ??= []).push(ids.indexOf(id));
    }
    // A row that matches no filter, then a marker: changes reach a socket in commit order and
    // one message carries all of a change's bindings, so once the marker is in, every event
    // still to come would already be here.
    await insertDelivery(org, { status: 'planned', driver: 'zed', qty: 50, price: 1, scheduled: '2024-01-01', urgent: true });
    const marker = await insertDelivery(org, { status: 'done', driver: 'ana', qty: 5, price: 0, scheduled: '2024-01-01', urgent: true });
    await inbox.next((e) => e.id === marker.id && e.name === 'eq', 'marker');
    for (const list of Object.values(got)) list.sort();
    assert.deepEqual(got, expected);
    // Nothing stray: what is left is the marker's other bindings, exactly.
    assert.deepEqual(
      inbox.items.map(({ name, id }) => ({ name, id })).sort((a, b) => a.name.localeCompare(b.name)),
      ['and', 'ilike', 'in', 'like', 'lte', 'neq'].map((name) => ({ name, id: marker.id })),
    );
  });

  test("two organizations never receive each other's changes, DELETE included", async () => {
    const orgA = randomUUID();
    const orgB = randomUUID();
    const inboxA = new Inbox();
    const inboxB = new Inbox();
    const binding = [{ event: '*', schema: 'public', table: 'rt_e2e_deliveries' }];
    await subscribe(changesChannel(realtimeClient({ token: memberToken(orgA) }), 'iso-a', binding, inboxA));
    await subscribe(changesChannel(realtimeClient({ token: memberToken(orgB) }), 'iso-b', binding, inboxB));
    const rowA = await insertDelivery(orgA, { driver: 'a' });
    const rowB = await insertDelivery(orgB, { driver: 'b' });
    await restAs(orgB).from('rt_e2e_deliveries').delete().eq('id', rowB.id);
    await restAs(orgA).from('rt_e2e_deliveries').delete().eq('id', rowA.id);
    // Each side sees its own insert then its own delete, in commit order, and nothing else.
    for (const [inbox, row] of [[inboxA, rowA], [inboxB, rowB]]) {
      const first = (await inbox.next()).payload;
      assert.equal(first.eventType, 'INSERT');
      assert.equal(first.new.id, row.id);
      const second = (await inbox.next()).payload;
      assert.equal(second.eventType, 'DELETE');
      assert.equal(second.old.id, row.id);
      assert.equal(inbox.items.length, 0);
    }
  });

  test('a refreshed token keeps receiving; an expired one is closed with the system error', async () => {
    const org = randomUUID();
    const exp = Math.floor(Date.now() / 1000) + 4;
    const refreshing = { token: memberToken(org, { exp }) };
    const expiring = { token: memberToken(org, { exp }) };
    const binding = [{ event: 'INSERT', schema: 'public', table: 'rt_e2e_deliveries' }];
    const kept = new Inbox();
    const closedInbox = new Inbox();
    const keptClient = realtimeClient(refreshing);
    await subscribe(changesChannel(keptClient, 'refresh-kept', binding, kept));
    const expiringChannel = changesChannel(realtimeClient(expiring), 'refresh-expiring', binding, closedInbox)
      .on('system', {}, (payload) => closedInbox.push({ system: payload }));
    await subscribe(expiringChannel, (status) => closedInbox.push({ status }));

    refreshing.token = memberToken(org, { exp: exp + 3600 });
    await keptClient.realtime.setAuth();

    const system = await closedInbox.next((e) => e.system?.status === 'error', 'expiry system error');
    assert.match(system.system.message, /^Token has expired \d+ seconds ago$/);
    assert.equal(system.system.extension, 'system');
    await closedInbox.next((e) => e.status === 'CLOSED', 'CLOSED');

    const row = await insertDelivery(org, { driver: 'after expiry' });
    const change = (await kept.next((e) => e.payload.new.id === row.id, 'change after refresh')).payload;
    assert.equal(change.new.driver, 'after expiry');
    assert.equal(closedInbox.items.filter((e) => e.payload).length, 0);
  });
});

describe('broadcast', () => {
  test('self and ack over the socket, and the HTTP endpoints', async () => {
    const topic = `room-${randomUUID()}`;
    const sender = realtimeClient({ token: ANON_KEY });
    const receiver = realtimeClient({ token: ANON_KEY });
    const mine = new Inbox();
    const theirs = new Inbox();
    const sending = sender
      .channel(topic, { config: { broadcast: { self: true, ack: true } } })
      .on('broadcast', { event: 'ping' }, (m) => mine.push(m));
    const receiving = receiver.channel(topic).on('broadcast', { event: '*' }, (m) => theirs.push(m));
    await subscribe(sending);
    await subscribe(receiving);

    assert.equal(await sending.send({ type: 'broadcast', event: 'ping', payload: { n: 1, s: 'é' } }), 'ok');
    assert.deepEqual((await mine.next()).payload, { n: 1, s: 'é' });
    const got = await theirs.next();
    assert.equal(got.event, 'ping');
    assert.deepEqual(got.payload, { n: 1, s: 'é' });

    await sending.httpSend('http-one', { via: 'http' });
    assert.deepEqual((await theirs.next((m) => m.event === 'http-one')).payload, { via: 'http' });

    const response = await fetch(`${API_URL}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { apikey: SERVICE_ROLE_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ topic, event: 'batch', payload: { k: 2 } }] }),
    });
    assert.equal(response.status, 202);
    assert.deepEqual((await theirs.next((m) => m.event === 'batch')).payload, { k: 2 });

    const refused = await fetch(`${API_URL}/realtime/v1/api/broadcast`, {
      method: 'POST',
      headers: { apikey: 'nope', 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [] }),
    });
    assert.equal(refused.status, 401);
    assert.deepEqual(await refused.json(), { message: 'Unauthorized' });
  });
});

describe('presence', () => {
  test('sync, join and leave across two clients', async () => {
    const topic = `presence-${randomUUID()}`;
    const first = realtimeClient({ token: ANON_KEY });
    const second = realtimeClient({ token: ANON_KEY });
    const events = new Inbox();
    const watching = first
      .channel(topic, { config: { presence: { key: 'first' } } })
      .on('presence', { event: 'sync' }, () => events.push({ sync: watching.presenceState() }))
      .on('presence', { event: 'join' }, (e) => events.push({ join: e.key }))
      .on('presence', { event: 'leave' }, (e) => events.push({ leave: e.key }));
    await subscribe(watching);
    const joining = second.channel(topic, { config: { presence: { key: 'second' } } });
    await subscribe(joining);
    assert.equal(await joining.track({ online_at: 'now', role: 'driver' }), 'ok');
    await events.next((e) => e.join === 'second', 'join');
    const synced = await events.next((e) => e.sync?.second, 'sync with second');
    assert.equal(synced.sync.second[0].role, 'driver');
    assert.ok(synced.sync.second[0].presence_ref);
    // Untrack leaves while the channel stays joined; tracking again joins again.
    assert.equal(await joining.untrack(), 'ok');
    await events.next((e) => e.leave === 'second', 'leave after untrack');
    const untracked = await events.next((e) => e.sync && !e.sync.second, 'sync after untrack');
    assert.deepEqual(untracked.sync, {});
    assert.equal(await joining.track({ online_at: 'later', role: 'driver' }), 'ok');
    await events.next((e) => e.join === 'second', 'join after track again');
    const retracked = await events.next((e) => e.sync?.second, 'sync with second again');
    assert.equal(retracked.sync.second[0].online_at, 'later');
    await second.removeChannel(joining);
    await events.next((e) => e.leave === 'second', 'leave');
    const after = await events.next((e) => e.sync && !e.sync.second, 'sync without second');
    assert.deepEqual(after.sync, {});
  });
});

describe('private channels', () => {
  test('refused without a realtime.messages policy, allowed with one', async () => {
    const org = randomUUID();
    const holder = { token: memberToken(org) };
    const c = realtimeClient(holder);
    const denied = c.channel(`org:${randomUUID()}`, { config: { private: true } });
    await assert.rejects(subscribe(denied), /Unauthorized: You do not have permissions to read from this Channel topic/);
    await c.removeChannel(denied);

    const inbox = new Inbox();
    const allowed = c
      .channel(`org:${org}`, { config: { private: true } })
      .on('broadcast', { event: '*' }, (m) => inbox.push(m));
    await subscribe(allowed);
    const peer = realtimeClient({ token: memberToken(org) });
    const peerChannel = peer.channel(`org:${org}`, { config: { private: true } });
    await subscribe(peerChannel);
    assert.equal(await peerChannel.send({ type: 'broadcast', event: 'note', payload: { x: 1 } }), 'ok');
    assert.deepEqual((await inbox.next((m) => m.event === 'note')).payload, { x: 1 });

    // Database-originated broadcast through realtime.send reaches the private channel.
    const { error } = await client(SERVICE_ROLE_KEY).rpc('rt_e2e_send', { topic: `org:${org}` });
    assert.equal(error?.code ?? null, null);
    const fromDb = await inbox.next((m) => m.event === 'db', 'database broadcast');
    assert.deepEqual(fromDb.payload, { from: 'database' });
    assert.match(fromDb.meta?.id ?? '', /^[0-9a-f-]{36}$/);
  });
});

describe('realtime.broadcast_changes()', () => {
  test('a row trigger broadcasts each change to the private topic of its organization', async () => {
    const org = randomUUID();
    const inbox = new Inbox();
    const channel = realtimeClient({ token: memberToken(org) })
      .channel(`org:${org}`, { config: { private: true } })
      .on('broadcast', { event: '*' }, (m) => inbox.push(m));
    await subscribe(channel);
    const db = client(SERVICE_ROLE_KEY);
    const { data: note, error } = await db
      .from('rt_e2e_notes').insert({ organization_id: org, body: 'first' }).select().single();
    assert.equal(error, null);
    const { error: updateError } = await db.from('rt_e2e_notes').update({ body: 'second' }).eq('id', note.id);
    assert.equal(updateError, null);
    const { error: deleteError } = await db.from('rt_e2e_notes').delete().eq('id', note.id);
    assert.equal(deleteError, null);

    const row = (body) => ({ id: note.id, organization_id: org, body });
    const shape = (operation, record, oldRecord) => ({
      operation, record, old_record: oldRecord, table: 'rt_e2e_notes', schema: 'public',
    });
    const insert = await inbox.next((m) => m.event === 'INSERT', 'INSERT broadcast');
    assert.deepEqual(insert.payload, shape('INSERT', row('first'), null));
    assert.match(insert.meta?.id ?? '', /^[0-9a-f-]{36}$/);
    const update = await inbox.next((m) => m.event === 'UPDATE', 'UPDATE broadcast');
    assert.deepEqual(update.payload, shape('UPDATE', row('second'), row('first')));
    const remove = await inbox.next((m) => m.event === 'DELETE', 'DELETE broadcast');
    assert.deepEqual(remove.payload, shape('DELETE', null, row('second')));
    assert.equal(inbox.items.length, 0);
  });
});

describe('serializers', () => {
  for (const vsn of ['1.0.0', '2.0.0']) {
    test(`vsn ${vsn}: changes and broadcast`, async () => {
      const org = randomUUID();
      const c = realtimeClient({ token: memberToken(org) }, { realtime: { vsn } });
      assert.equal(c.realtime.vsn, vsn);
      const inbox = new Inbox();
      const channel = c
        .channel(`vsn-${vsn}-${org}`, { config: { broadcast: { self: true } } })
        .on('postgres_changes', { event: 'INSERT', schema: 'public', table: 'rt_e2e_deliveries' }, (p) => inbox.push({ change: p }))
        .on('broadcast', { event: 'hello' }, (m) => inbox.push({ broadcast: m }));
      await subscribe(channel);
      const row = await insertDelivery(org, { driver: vsn });
      const change = await inbox.next((e) => e.change, 'change');
      assert.equal(change.change.new.id, row.id);
      await channel.send({ type: 'broadcast', event: 'hello', payload: { vsn } });
      const hello = await inbox.next((e) => e.broadcast, 'broadcast');
      assert.deepEqual(hello.broadcast.payload, { vsn });
    });
  }
});
