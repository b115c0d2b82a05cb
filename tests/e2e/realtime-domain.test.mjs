// Realtime on the gas-cylinder domain with the real supabase-js: deliveries are published with
// REPLICA IDENTITY FULL and their SELECT policy lets the office of an organization see all of its
// deliveries and a driver only the stops assigned to them. postgres_changes must follow exactly
// that, for INSERT, UPDATE and DELETE (judged on the committed old row). The policy calls
// SECURITY DEFINER helpers, so this also covers the authorizer's per-identity path.
// Fixture: fixtures/0100_domain.sql.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { ANON_KEY, client, signJwt } from './env.mjs';
import { ORG, fixtureIds, ok, service, unique, userId } from './domain.mjs';

const WAIT_MS = 15000;
const clients = [];

after(async () => {
  await Promise.all(clients.map((c) => c.removeAllChannels()));
});

/** Changes of one subscriber, in arrival order, with a wait for a given one. */
function watch(org, role) {
  const token = signJwt({ sub: userId(org, role), role: 'authenticated', aud: 'authenticated' });
  const c = client(ANON_KEY, { accessToken: async () => token });
  clients.push(c);
  const seen = [];
  const waiters = [];
  const channel = c
    .channel(`domain-${org}-${role.replace(' ', '-')}-${unique('w')}`)
    .on('postgres_changes', { event: '*', schema: 'public', table: 'deliveries' }, (payload) => {
      seen.push(payload);
      for (const waiter of [...waiters]) {
        if (waiter.match(payload)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(payload);
        }
      }
    });
  // The token must be in hand before the join is pushed (see realtime.test.mjs `subscribe`).
  const subscribed = c.realtime.setAuth().then(() => new Promise((resolve, reject) => {
    channel.subscribe((status, error) => {
      if (status === 'SUBSCRIBED') resolve();
      else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') reject(error ?? new Error(status));
    });
  }));
  const until = (match, what) => {
    const found = seen.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = { match, resolve };
      waiters.push(waiter);
      setTimeout(() => {
        if (waiters.includes(waiter)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`${org} ${role}: timed out waiting for ${what}`));
        }
      }, WAIT_MS).unref();
    });
  };
  return { seen, subscribed, until };
}

const rowOf = (payload) => (payload.eventType === 'DELETE' ? payload.old : payload.new);

test("drivers see only their own stops, the office its organization's, never another organization's — DELETE included", async () => {
  const ids = { a: await fixtureIds('a'), b: await fixtureIds('b') };
  const driverA = watch('a', 'driver');
  const secondDriverA = watch('a', 'second driver');
  const managerA = watch('a', 'manager');
  const driverB = watch('b', 'driver');
  const all = [driverA, secondDriverA, managerA, driverB];
  await Promise.all(all.map((w) => w.subscribed));

  const db = service();
  const add = async (org, role, label) =>
    ok(await db.from('deliveries').insert({
      organization_id: ORG[org], customer_id: ids[org].weld, driver_id: userId(org, role),
      delivery_number: unique(`rt-${label}`),
    }).select('id, delivery_number').single());

  const a1 = await add('a', 'driver', 'a1');
  const a2 = await add('a', 'second driver', 'a2');
  const b1 = await add('b', 'driver', 'b1');
  ok(await db.from('deliveries').update({ delivery_notes: 'gate code 4711' }).eq('id', a1.id).select('id'));
  ok(await db.from('deliveries').delete().eq('id', a2.id).select('id'));
  ok(await db.from('deliveries').delete().eq('id', b1.id).select('id'));
  ok(await db.from('deliveries').delete().eq('id', a1.id).select('id'));
  // Markers committed last: per socket, changes arrive in commit order, so once a subscriber has
  // its marker, anything it should not see would already have arrived.
  const markA1 = await add('a', 'driver', 'mark');
  const markA2 = await add('a', 'second driver', 'mark');
  const markB = await add('b', 'driver', 'mark');

  const isRow = (row) => (p) => rowOf(p).id === row.id;
  await driverA.until(isRow(markA1), 'its marker');
  await secondDriverA.until(isRow(markA2), 'its marker');
  await managerA.until(isRow(markA2), 'the last org A marker');
  await driverB.until(isRow(markB), 'its marker');

  const mine = new Map([a1, a2, b1, markA1, markA2, markB].map((row) => [row.id, row.delivery_number]));
  const story = (w) =>
    w.seen.filter((p) => mine.has(rowOf(p).id)).map((p) => `${p.eventType} ${mine.get(rowOf(p).id).split('-')[1]}`);
  assert.deepEqual(story(driverA), ['INSERT a1', 'UPDATE a1', 'DELETE a1', 'INSERT mark']);
  assert.deepEqual(story(secondDriverA), ['INSERT a2', 'DELETE a2', 'INSERT mark']);
  assert.deepEqual(story(managerA), [
    'INSERT a1', 'INSERT a2', 'UPDATE a1', 'DELETE a2', 'DELETE a1', 'INSERT mark', 'INSERT mark',
  ]);
  assert.deepEqual(story(driverB), ['INSERT b1', 'DELETE b1', 'INSERT mark']);

  // Whatever else other suites did meanwhile, nobody saw a row outside their policy.
  for (const w of [driverA, secondDriverA, managerA]) {
    assert.ok(w.seen.every((p) => rowOf(p).organization_id === ORG.a));
  }
  assert.ok(driverB.seen.every((p) => rowOf(p).organization_id === ORG.b));
  assert.ok(driverA.seen.every((p) => rowOf(p).driver_id === userId('a', 'driver')));
  assert.ok(driverB.seen.every((p) => rowOf(p).driver_id === userId('b', 'driver')));

  // DELETE carries the full committed old row (REPLICA IDENTITY FULL), as the policy judged it.
  const deleted = driverA.seen.find((p) => p.eventType === 'DELETE' && p.old.id === a1.id);
  assert.equal(deleted.old.delivery_notes, 'gate code 4711');
  assert.equal(deleted.old.organization_id, ORG.a);
  assert.deepEqual(deleted.new, {});
});
