// Issue 4: hostile and random strings in every place a request can carry text. Each request must
// give a correct result or a 4xx: never a 5xx, never SQL built from the text, never a changed row.
// Places: filter values, column names, select, order, table, on_conflict, insert/update body
// keys (and the `columns=` they become), RPC names and RPC argument names over POST and GET.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { SERVICE_ROLE_KEY, client } from './env.mjs';

const db = () => client().schema('fixtures');
const admin = () => client(SERVICE_ROLE_KEY).schema('fixtures');

const HOSTILE = [
  "'",
  '"',
  ';',
  '--',
  "' or 1=1 --",
  "x'; drop table fixtures.gadgets; --",
  '"; delete from fixtures.gadgets; --',
  '(',
  ')',
  '),(',
  ',',
  '.',
  '*',
  '%',
  '\\',
  '\\"',
  '$1',
  '$$',
  '::text',
  '->>',
  'eq.1',
  'not.is.null',
  'ünïcødé 🎉 日本',
  'a\u0000b',
  'line\nbreak\ttab',
  '{a,b}',
  '[1,2)',
  'x'.repeat(5000),
];

/** A deterministic generator, so a failure can be replayed. */
function* randomStrings(seed, count) {
  let state = seed;
  const alphabet = "abcXYZ019 '\";:,.()[]{}*%$#-_>=!?\\/|&^~`@\u00e9\u4e2d\u0001\n";
  for (let i = 0; i < count; i++) {
    let text = '';
    const length = 1 + (state % 24);
    for (let j = 0; j < length; j++) {
      state = (state * 1103515245 + 12345) % 2147483648;
      text += alphabet[state % alphabet.length];
    }
    yield text;
  }
}

// The fuzz suite owns fuzz_targets (hostile names and filters; must never change) and
// fuzz_values (hostile values stored and read back): node --test runs files in parallel, and no
// other file touches these tables, so a before/after snapshot cannot race.
async function snapshot() {
  const { data, error } = await admin().from('fuzz_targets').select('id, name, price, stock, note').order('id');
  assert.equal(error, null);
  assert.equal(data.length, 3, 'the fixture rows are present');
  return JSON.stringify(data);
}

function assertNot5xx(label, result) {
  assert.ok(result.status < 500, `${label}: status ${result.status} ${JSON.stringify(result.error)}`);
}

function assert4xx(label, result) {
  assert.ok(result.status >= 400 && result.status < 500, `${label}: status ${result.status} ${JSON.stringify(result.error)}`);
}

test('hostile strings never reach SQL text', async () => {
  const before = await snapshot();
  const inputs = [...HOSTILE, ...randomStrings(20261125, 150)];
  const targets = () => db().from('fuzz_targets');
  for (const text of inputs) {
    const label = JSON.stringify(text.slice(0, 40));
    // As a filter value: a bound value, so the query runs and matches nothing.
    const eq = await targets().select('id').eq('name', text);
    assertNot5xx(`eq value ${label}`, eq);
    if (!text.includes('\u0000')) {
      assert.equal(eq.status, 200, `eq value ${label}: ${JSON.stringify(eq.error)}`);
      assert.deepEqual(eq.data, [], `eq value ${label}`);
    }
    assertNot5xx(`in list ${label}`, await targets().select('id').in('name', [text, 'zz']));
    assertNot5xx(`like ${label}`, await targets().select('id').like('name', text));
    assertNot5xx(`or tree ${label}`, await targets().select('id').or(`name.eq.${text},stock.lt.0`));
    assertNot5xx(`fts ${label}`, await targets().select('id').textSearch('name', text));
    // As a name: only names from the schema cache reach SQL; anything else is a 4xx.
    assertNot5xx(`column ${label}`, await targets().select('id').eq(text, 'x'));
    assertNot5xx(`select ${label}`, await targets().select(text));
    assertNot5xx(`order ${label}`, await targets().select('id').order(text));
    assertNot5xx(`table ${label}`, await db().from(text).select());
    assertNot5xx(
      `on_conflict ${label}`,
      await targets().upsert({ name: 'never-inserted-unless-valid' }, { onConflict: text }).select('id').rollback(),
    );
    // As a body key: an unknown column (PGRST204); in an array it also becomes `columns="…"`.
    assert4xx(`insert key ${label}`, await targets().insert({ [text]: 1 }));
    assert4xx(`bulk insert key ${label}`, await targets().insert([{ [text]: 1 }, { name: 'never-inserted' }]));
    assert4xx(`update key ${label}`, await targets().update({ [text]: 1 }).eq('name', 'anvil'));
    assert4xx(
      `upsert key ${label}`,
      await targets().upsert([{ name: 'anvil', [text]: 1 }], { onConflict: 'name' }),
    );
    // As an RPC argument name, in a JSON body and in the query string of a GET call.
    assertNot5xx(`rpc argument ${label}`, await db().rpc('describe', { [text]: 1 }));
    assertNot5xx(`rpc GET argument ${label}`, await db().rpc('describe', { [text]: 1 }, { get: true }));
    assertNot5xx(`rpc GET value ${label}`, await db().rpc('describe', { label: text }, { get: true }));
    assertNot5xx(`rpc name ${label}`, await db().rpc(text, {}));
    assertNot5xx(`update filter ${label}`, await targets().update({ note: 'changed' }).eq('name', text));
    assertNot5xx(`delete filter ${label}`, await targets().delete().eq('name', text));
  }
  assert.equal(await snapshot(), before, 'no row changed');
});

test('hostile strings as values are stored and read back exactly', async () => {
  const stored = [];
  for (const text of [...HOSTILE, ...randomStrings(7, 40)]) {
    const name = `fuzz:${stored.length}:${text}`;
    const { error, status } = await admin().from('fuzz_values').insert({ name, note: text });
    if (text.includes('\u0000')) {
      // PostgreSQL text cannot hold NUL: a 4xx, nothing stored.
      assert.equal(status, 400, JSON.stringify(error));
      continue;
    }
    assert.equal(error, null, JSON.stringify(error));
    stored.push({ name, note: text });
  }
  for (const row of stored) {
    const { data } = await admin().from('fuzz_values').select('name, note').eq('name', row.name).single();
    assert.deepEqual(data, row);
  }
  // supabase-js does not escape quotes inside .in() lists, so select the rows by prefix.
  const removed = await admin().from('fuzz_values').delete({ count: 'exact' }).like('name', 'fuzz:%');
  assert.equal(removed.error, null, JSON.stringify(removed.error));
  assert.equal(removed.count, stored.length);
});
