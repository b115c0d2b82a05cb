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

  test('an update that breaks the WITH CHECK policy: 403 and nothing changed', async () => {
    const body = unique('moving');
    const asAlice = userClient(alice).schema('fixtures');
    const created = await asAlice.from('diary').insert({ body });
    assert.equal(created.status, 201);
    const { error, status } = await asAlice.from('diary').update({ owner: bob }).eq('body', body);
    assert.equal(status, 403);
    assert.deepEqual(error, {
      code: '42501',
      details: null,
      hint: null,
      message: 'new row violates row-level security policy for table "diary"',
    });
    const check = await admin().from('diary').select('owner, body').eq('body', body);
    assert.deepEqual(check.data, [{ owner: alice, body }]);
  });

  test('RETURNING needs a SELECT policy on the new row: 403 and nothing written', async () => {
    const letter = unique('letter');
    const asAlice = userClient(alice).schema('fixtures');
    const returned = await asAlice.from('dropbox').insert({ recipient: bob, letter }).select('letter');
    assert.equal(returned.status, 403);
    assert.deepEqual(returned.error, {
      code: '42501',
      details: null,
      hint: null,
      message: 'new row violates row-level security policy for table "dropbox"',
    });
    assert.deepEqual((await admin().from('dropbox').select('letter').eq('letter', letter)).data, []);
    // Without a representation the row is only checked against the INSERT policy.
    const minimal = await asAlice.from('dropbox').insert({ recipient: bob, letter });
    assert.equal(minimal.error, null);
    assert.equal(minimal.status, 201);
    const asBob = userClient(bob).schema('fixtures');
    assert.deepEqual((await asBob.from('dropbox').select('recipient, letter').eq('letter', letter)).data, [
      { recipient: bob, letter },
    ]);
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

  test('a single unnamed json parameter takes the whole body, objects and arrays', async () => {
    const { data, error, status } = await db().rpc('echo_json', { a: [1, 2], b: 'x' });
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.deepEqual(data, { a: [1, 2], b: 'x' });
    const response = await fetch(`${API_URL}/rest/v1/rpc/echo_json`, {
      method: 'POST',
      headers: { apikey: ANON_KEY, 'content-profile': 'fixtures', 'content-type': 'application/json' },
      body: '[1, 2]',
    });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), [1, 2]);
  });

  test('HEAD with a count and a filter: no body', async () => {
    const name = unique('head');
    await admin().from('gadgets').insert({ name, price: 0.2 });
    const { data, count, error, status } = await db()
      .rpc('gadgets_cheaper_than', { max_price: 0.3 }, { head: true, count: 'exact' })
      .eq('name', name);
    assert.equal(error, null);
    assert.equal(status, 200);
    assert.equal(data, null);
    assert.equal(count, 1);
  });

  test('a single composite is an object; SETOF scalar is an array of values', async () => {
    const prefix = unique('shape');
    const [a, b] = [`${prefix}-a`, `${prefix}-b`];
    const seeded = await admin()
      .from('gadgets')
      .insert([{ name: b, stock: 2, note: 'n' }, { name: a }], { defaultToNull: false });
    assert.equal(seeded.error, null, JSON.stringify(seeded.error));
    const one = await db().rpc('gadget_by_name', { gadget_name: b });
    assert.equal(one.error, null);
    assert.equal(one.status, 200);
    assert.deepEqual({ ...one.data, id: undefined }, { id: undefined, name: b, price: 9.99, stock: 2, note: 'n' });
    assert.equal(typeof one.data.id, 'number');
    const names = await db().rpc('gadget_names', { name_prefix: prefix });
    assert.equal(names.error, null);
    assert.deepEqual(names.data, [a, b]);
  });

  test('variadic arguments over POST and GET', async () => {
    assert.deepEqual((await db().rpc('sum_all', { numbers: [1, 2, 3] })).data, 6);
    const viaGet = await db().rpc('sum_all', { numbers: [4, 5] }, { get: true });
    assert.equal(viaGet.error, null);
    assert.equal(viaGet.data, 9);
    const repeated = await fetch(`${API_URL}/rest/v1/rpc/sum_all?numbers=10&numbers=20`, {
      headers: { apikey: ANON_KEY, 'accept-profile': 'fixtures' },
    });
    assert.equal(repeated.status, 200);
    assert.equal(await repeated.json(), 30);
  });

  test('GET on a VOLATILE function that writes: 405 and nothing changed', async () => {
    const name = unique('ro');
    await admin().from('gadgets').insert({ name, stock: 1 });
    const { error, status } = await db().rpc('restock', { gadget_name: name, amount: 4 }, { get: true });
    assert.equal(status, 405);
    assert.deepEqual(error, {
      code: '25006',
      details: null,
      hint: null,
      message: 'cannot execute UPDATE in a read-only transaction',
    });
    assert.equal((await gadgetsNamed(name))[0].stock, 1);
  });
});

describe('more writes', () => {
  const put = (query, body, prefer) =>
    fetch(`${API_URL}/rest/v1/gadgets?${query}`, {
      method: 'PUT',
      headers: {
        apikey: ANON_KEY,
        'content-profile': 'fixtures',
        'content-type': 'application/json',
        ...(prefer ? { prefer } : {}),
      },
      body: JSON.stringify(body),
    });
  const freshId = () => 1_000_000 + Math.floor(Math.random() * 1_000_000_000);

  test('PUT upserts one row by its primary key: 201, then 200', async () => {
    const id = freshId();
    const name = unique('put');
    const created = await put(`id=eq.${id}&select=id,name,stock`, { id, name, stock: 1 }, 'return=representation');
    assert.equal(created.status, 201);
    assert.deepEqual(await created.json(), [{ id, name, stock: 1 }]);
    const replaced = await put(`id=eq.${id}&select=id,name,stock`, { id, name, stock: 2 }, 'return=representation');
    assert.equal(replaced.status, 200);
    assert.deepEqual(await replaced.json(), [{ id, name, stock: 2 }]);
    const minimal = await put(`id=eq.${id}`, { id, name, stock: 3 });
    assert.equal(minimal.status, 204);
    assert.equal(await minimal.text(), '');
    assert.deepEqual(await gadgetsNamed(name), [{ name, price: 9.99, stock: 3, note: null }]);
  });

  test('PUT rules: the filter is eq on the whole key, the body agrees, no paging', async () => {
    const id = freshId();
    const name = unique('putrule');
    const cases = [
      [`name=eq.${name}`, { id, name }, 405, 'PGRST105'],
      [`id=gt.${id}`, { id, name }, 405, 'PGRST105'],
      [`id=eq.${id}`, { id: id + 1, name }, 400, 'PGRST115'],
      [`id=eq.${id}&limit=1`, { id, name }, 400, 'PGRST114'],
    ];
    for (const [query, body, status, code] of cases) {
      const response = await put(query, body);
      assert.equal(response.status, status, query);
      assert.equal((await response.json()).code, code, query);
    }
    assert.deepEqual(await gadgetsNamed(name), []);
  });

  test('return=headers-only answers a Location naming the new row', async () => {
    const name = unique('loc');
    const response = await fetch(`${API_URL}/rest/v1/gadgets`, {
      method: 'POST',
      headers: {
        apikey: ANON_KEY,
        'content-profile': 'fixtures',
        'content-type': 'application/json',
        prefer: 'return=headers-only',
      },
      body: JSON.stringify({ name }),
    });
    assert.equal(response.status, 201);
    assert.equal(await response.text(), '');
    const { data } = await admin().from('gadgets').select('id').eq('name', name).single();
    assert.equal(response.headers.get('location'), `/gadgets?id=eq.${data.id}`);
    assert.equal(response.headers.get('preference-applied'), 'return=headers-only');
  });

  test('select with an embed on insert and update results', async () => {
    const name = unique('rev');
    const { data: gadget } = await admin().from('gadgets').insert({ name, stock: 7 }).select('id').single();
    const inserted = await db().from('reviews').insert({ gadget_id: gadget.id, stars: 4 }).select('stars, gadgets(name)');
    assert.equal(inserted.error, null);
    assert.equal(inserted.status, 201);
    assert.deepEqual(inserted.data, [{ stars: 4, gadgets: { name } }]);
    const updated = await db()
      .from('reviews')
      .update({ stars: 5 })
      .eq('gadget_id', gadget.id)
      .select('stars, gadget:gadgets(name, stock)');
    assert.equal(updated.error, null);
    assert.deepEqual(updated.data, [{ stars: 5, gadget: { name, stock: 7 } }]);
  });

  test('a foreign key violation: 409 with the detail', async () => {
    const { error, status } = await db().from('reviews').insert({ gadget_id: -1, stars: 3 });
    assert.equal(status, 409);
    assert.deepEqual(error, {
      code: '23503',
      details: 'Key (gadget_id)=(-1) is not present in table "gadgets".',
      hint: null,
      message: 'insert or update on table "reviews" violates foreign key constraint "reviews_gadget_id_fkey"',
    });
  });

  test('upsert without onConflict merges on the primary key', async () => {
    const name = unique('pk');
    const { data: row } = await db().from('gadgets').insert({ name, stock: 1 }).select('id').single();
    const merged = await db().from('gadgets').upsert({ id: row.id, name, stock: 9 }).select('id, name, stock');
    assert.equal(merged.error, null);
    assert.equal(merged.status, 200, 'only an update: 200');
    assert.deepEqual(merged.data, [{ id: row.id, name, stock: 9 }]);
    assert.deepEqual((await gadgetsNamed(name)).map((g) => g.stock), [9]);
  });

  test('a single object with defaultToNull: false keeps column defaults', async () => {
    const name = unique('dflt');
    const response = await fetch(`${API_URL}/rest/v1/gadgets?columns=name,price,stock&select=name,price,stock`, {
      method: 'POST',
      headers: {
        apikey: ANON_KEY,
        'content-profile': 'fixtures',
        'content-type': 'application/json',
        prefer: 'missing=default, return=representation',
      },
      body: JSON.stringify({ name }),
    });
    assert.equal(response.status, 201);
    assert.deepEqual(await response.json(), [{ name, price: 9.99, stock: 0 }]);
    assert.equal(response.headers.get('preference-applied'), 'return=representation, missing=default');
  });
});
