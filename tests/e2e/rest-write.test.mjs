// Issue 4: writes and RPC through the real supabase-js (schema `fixtures`, see
// tests/fixtures/0002_rest_write.sql). Every test uses names of its own, so tests are independent.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import { API_URL, ANON_KEY, SERVICE_ROLE_KEY, client, userClient } from './env.mjs';

const db = () => client().schema('fixtures');
const admin = () => client(SERVICE_ROLE_KEY).schema('fixtures');
const unique = (prefix) => `${prefix}-${randomUUID().slice(0, 8)}`;

async function gadgetsNamed(...names) {
  const { data, error } = await admin().from('gadgets').select('name, price, stock, note').in('name', names).order('name');
  assert.equal(error, null);
  return data;
}

describe('insert', () => {
  test('a single object: 201 and no body by default', async () => {
    const name = unique('single');
    const { data, error, status } = await db().from('gadgets').insert({ name, price: 12.5 });
    assert.equal(error, null);
    assert.equal(status, 201);
    assert.equal(data, null);
    assert.deepEqual(await gadgetsNamed(name), [{ name, price: 12.5, stock: 0, note: null }]);
  });

  test('bulk with missing keys as null, then with defaultToNull: false', async () => {
    const [a, b, c, d] = [unique('bulk'), unique('bulk'), unique('bulk'), unique('bulk')];
    const asNull = await db().from('gadgets').insert([{ name: a, note: 'x' }, { name: b, price: 1 }]).select('name, price, note');
    assert.equal(asNull.status, 201);
    assert.deepEqual(asNull.data, [
      { name: a, price: null, note: 'x' },
      { name: b, price: 1, note: null },
    ]);
    const withDefaults = await db()
      .from('gadgets')
      .insert([{ name: c, note: 'y' }, { name: d, price: 2 }], { defaultToNull: false })
      .select('name, price, note');
    assert.deepEqual(withDefaults.data, [
      { name: c, price: 9.99, note: 'y' },
      { name: d, price: 2, note: null },
    ]);
  });

  test('single() after insert returns the object', async () => {
    const name = unique('one');
    const { data, error } = await db().from('gadgets').insert({ name, stock: 3 }).select('name, stock').single();
    assert.equal(error, null);
    assert.deepEqual(data, { name, stock: 3 });
  });

  test('count on writes', async () => {
    const names = [unique('count'), unique('count'), unique('count')];
    const { count, status } = await db().from('gadgets').insert(names.map((name) => ({ name })), { count: 'exact' });
    assert.equal(status, 201);
    assert.equal(count, 3);
    const removed = await db().from('gadgets').delete({ count: 'exact' }).in('name', names);
    assert.equal(removed.status, 204);
    assert.equal(removed.count, 3);
  });

  test('duplicate key: 409 with the detail', async () => {
    const name = unique('dup');
    await db().from('gadgets').insert({ name });
    const { error, status } = await db().from('gadgets').insert({ name });
    assert.equal(status, 409);
    assert.deepEqual(error, {
      code: '23505',
      details: `Key (name)=(${name}) already exists.`,
      hint: null,
      message: 'duplicate key value violates unique constraint "gadgets_name_key"',
    });
  });

  test('check violation: 400 and nothing written', async () => {
    const name = unique('check');
    const { error, status } = await db().from('gadgets').insert({ name, price: -1 });
    assert.equal(status, 400);
    assert.equal(error.code, '23514');
    assert.equal(error.message, 'new row for relation "gadgets" violates check constraint "gadgets_price_check"');
    assert.deepEqual(await gadgetsNamed(name), []);
  });

  test('a bulk insert is all or nothing', async () => {
    const ok = unique('atomic');
    const { status } = await db().from('gadgets').insert([{ name: ok }, { name: unique('atomic'), price: -5 }]);
    assert.equal(status, 400);
    assert.deepEqual(await gadgetsNamed(ok), []);
  });

  test('malformed JSON: PGRST102', async () => {
    const response = await fetch(`${API_URL}/rest/v1/gadgets`, {
      method: 'POST',
      headers: { apikey: ANON_KEY, 'content-profile': 'fixtures', 'content-type': 'application/json' },
      body: '{"name": "broken",',
    });
    assert.equal(response.status, 400);
    assert.deepEqual(await response.json(), {
      code: 'PGRST102',
      details: null,
      hint: null,
      message: 'Empty or invalid json',
    });
  });

  test('an unknown column: PGRST204', async () => {
    const { error, status } = await db().from('gadgets').insert({ name: unique('x'), colour: 'red' });
    assert.equal(status, 400);
    assert.deepEqual(error, {
      code: 'PGRST204',
      details: null,
      hint: null,
      message: "Could not find the 'colour' column of 'gadgets' in the schema cache",
    });
  });
});

describe('upsert', () => {
  test('merge on a conflict column updates, then inserts', async () => {
    const name = unique('up');
    await db().from('gadgets').insert({ name, stock: 1 });
    const merged = await db().from('gadgets').upsert({ name, stock: 5 }, { onConflict: 'name' }).select('name, stock');
    assert.equal(merged.status, 200, 'only updated rows: 200');
    assert.deepEqual(merged.data, [{ name, stock: 5 }]);
    const fresh = unique('up');
    const inserted = await db().from('gadgets').upsert([{ name, stock: 6 }, { name: fresh, stock: 7 }], { onConflict: 'name' }).select('name, stock');
    assert.equal(inserted.status, 201, 'some rows inserted: 201');
    assert.deepEqual(inserted.data, [{ name, stock: 6 }, { name: fresh, stock: 7 }]);
  });

  test('ignoreDuplicates keeps existing rows and returns only new ones', async () => {
    const name = unique('ign');
    const fresh = unique('ign');
    await db().from('gadgets').insert({ name, stock: 1 });
    const { data, status } = await db()
      .from('gadgets')
      .upsert([{ name, stock: 99 }, { name: fresh, stock: 2 }], { onConflict: 'name', ignoreDuplicates: true })
      .select('name, stock');
    assert.equal(status, 201);
    assert.deepEqual(data, [{ name: fresh, stock: 2 }]);
    assert.deepEqual((await gadgetsNamed(name))[0].stock, 1);
  });
});

describe('update and delete', () => {
  test('update with filters and select', async () => {
    const [a, b] = [unique('upd'), unique('upd')];
    await db().from('gadgets').insert([{ name: a, stock: 1 }, { name: b, stock: 2 }]);
    const { data, status, error } = await db().from('gadgets').update({ note: 'sold out', stock: 0 }).eq('name', a).select('name, stock, note');
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.deepEqual(data, [{ name: a, stock: 0, note: 'sold out' }]);
    const untouched = await gadgetsNamed(b);
    assert.equal(untouched[0].note, null);
    const minimal = await db().from('gadgets').update({ stock: 4 }).eq('name', b);
    assert.equal(minimal.status, 204);
    assert.equal(minimal.data, null);
  });

  test('delete with filters and select', async () => {
    const [a, b] = [unique('del'), unique('del')];
    await db().from('gadgets').insert([{ name: a }, { name: b }]);
    const { data, status } = await db().from('gadgets').delete().eq('name', a).select('name');
    assert.equal(status, 200);
    assert.deepEqual(data, [{ name: a }]);
    assert.deepEqual((await gadgetsNamed(a, b)).map((g) => g.name), [b]);
  });

  test('maxAffected refuses and rolls back', async () => {
    const names = [unique('max'), unique('max')];
    await db().from('gadgets').insert(names.map((name) => ({ name })));
    const { error, status } = await db().from('gadgets').update({ note: 'bulk' }).in('name', names).maxAffected(1);
    assert.equal(status, 400);
    assert.deepEqual(error, {
      code: 'PGRST124',
      details: 'The query affects 2 rows',
      hint: null,
      message: 'Query result exceeds max-affected preference constraint',
    });
    assert.deepEqual((await gadgetsNamed(...names)).map((g) => g.note), [null, null]);
  });

  test('single() on an update of several rows rolls back', async () => {
    const names = [unique('sgl'), unique('sgl')];
    await db().from('gadgets').insert(names.map((name) => ({ name })));
    const { error, status } = await db().from('gadgets').update({ note: 'x' }).in('name', names).select().single();
    assert.equal(status, 406);
    assert.equal(error.code, 'PGRST116');
    assert.deepEqual((await gadgetsNamed(...names)).map((g) => g.note), [null, null]);
  });

  test('rollback() computes the answer and keeps nothing', async () => {
    const name = unique('rb');
    const { data, status } = await db().from('gadgets').insert({ name }).select('name').rollback();
    assert.equal(status, 201);
    assert.deepEqual(data, [{ name }]);
    assert.deepEqual(await gadgetsNamed(name), []);
  });
});

describe('row-level security on writes', () => {
  const alice = '11111111-aaaa-4aaa-8aaa-111111111111';
  const bob = '22222222-bbbb-4bbb-8bbb-222222222222';

  test('anon without a grant: 401 and nothing written', async () => {
    const body = unique('anon');
    const { error, status } = await db().from('diary').insert({ owner: alice, body });
    assert.equal(status, 401);
    assert.deepEqual(error, { code: '42501', details: null, hint: null, message: 'permission denied for table diary' });
    const check = await admin().from('diary').select('id').eq('body', body);
    assert.deepEqual(check.data, []);
  });

  test('a user writing for another user: 403 and nothing written', async () => {
    const body = unique('forged');
    const { error, status } = await userClient(alice).schema('fixtures').from('diary').insert({ owner: bob, body });
    assert.equal(status, 403);
    assert.deepEqual(error, {
      code: '42501',
      details: null,
      hint: null,
      message: 'new row violates row-level security policy for table "diary"',
    });
    const check = await admin().from('diary').select('id').eq('body', body);
    assert.deepEqual(check.data, []);
  });

  test('own rows: insert with default owner, update and delete only them', async () => {
    const mine = unique('mine');
    const theirs = unique('theirs');
    const asAlice = userClient(alice).schema('fixtures');
    const asBob = userClient(bob).schema('fixtures');
    const created = await asAlice.from('diary').insert({ body: mine }).select('owner, body').single();
    assert.deepEqual(created.data, { owner: alice, body: mine });
    await asBob.from('diary').insert({ body: theirs });
    const hijack = await asAlice.from('diary').update({ body: 'hijacked' }).eq('body', theirs).select();
    assert.deepEqual(hijack.data, [], 'RLS hides the row: nothing updated');
    const wipe = await asAlice.from('diary').delete().eq('body', theirs).select();
    assert.deepEqual(wipe.data, []);
    const check = await admin().from('diary').select('body').in('body', [theirs, 'hijacked']);
    assert.deepEqual(check.data, [{ body: theirs }]);
  });
});

describe('rpc', () => {
  test('POST with filters, order and select on a set-returning function', async () => {
    const [cheap, mid, dear] = [unique('cheap'), unique('mid'), unique('dear')];
    await admin().from('gadgets').insert([{ name: cheap, price: 0.5 }, { name: mid, price: 0.75 }, { name: dear, price: 99 }]);
    const { data, error } = await db()
      .rpc('gadgets_cheaper_than', { max_price: 1 })
      .select('name, price')
      .in('name', [cheap, mid, dear])
      .order('price', { ascending: false });
    assert.equal(error, null);
    assert.deepEqual(data, [{ name: mid, price: 0.75 }, { name: cheap, price: 0.5 }]);
  });

  test('GET ({ get: true }) with a filter and a count', async () => {
    const name = unique('get');
    await admin().from('gadgets').insert({ name, price: 0.25 });
    const { data, count, error } = await db()
      .rpc('gadgets_cheaper_than', { max_price: 0.3 }, { get: true, count: 'exact' })
      .eq('name', name)
      .select('name');
    assert.equal(error, null);
    assert.deepEqual(data, [{ name }]);
    assert.equal(count, 1);
  });

  test('a void function: 204 and its effect', async () => {
    const name = unique('void');
    await admin().from('gadgets').insert({ name, stock: 1 });
    const { data, error, status } = await db().rpc('restock', { gadget_name: name, amount: 4 });
    assert.equal(error, null);
    assert.equal(status, 204);
    assert.equal(data, null);
    assert.equal((await gadgetsNamed(name))[0].stock, 5);
  });

  test('an overloaded function is chosen by argument names', async () => {
    assert.equal((await db().rpc('describe', { value: 7 })).data, 'number 7');
    assert.equal((await db().rpc('describe', { label: 'x' })).data, 'label x');
    const { error, status } = await db().rpc('describe', { other: 1 });
    assert.equal(status, 404);
    assert.equal(error.code, 'PGRST202');
    assert.equal(error.message, 'Could not find the function fixtures.describe(other) in the schema cache');
  });

  test('a scalar result and a raised exception', async () => {
    const count = await db().rpc('gadget_count');
    assert.equal(typeof count.data, 'number');
    const { error, status } = await db().rpc('fail_politely', { reason: 'no stock' });
    assert.equal(status, 400);
    assert.deepEqual(error, { code: 'P0001', details: null, hint: 'try again', message: 'no stock' });
  });
});
