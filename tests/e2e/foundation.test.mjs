// Issue 2: the real supabase-js reaches the server; the gateway's apikey rule and CORS.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { API_URL, ANON_KEY, PUBLISHABLE_KEY, client } from './env.mjs';

test('createClient(url, anonKey) reaches the server', async () => {
  const { error, status } = await client(ANON_KEY).from('no_such_table').select();
  // Past the gateway: the REST layer itself answers for an unknown table.
  assert.equal(status, 404);
  assert.ok(error, 'an unknown table is an error');
});

test('a request without apikey gets 401 with the Supabase JSON body', async () => {
  const response = await fetch(`${API_URL}/rest/v1/no_such_table?select=*`);
  assert.equal(response.status, 401);
  assert.match(response.headers.get('content-type'), /application\/json/);
  assert.deepEqual(await response.json(), {
    message: 'No API key found in request',
    hint: 'No `apikey` request header or url param was found.',
  });
});

test('an unknown key is refused through supabase-js', async () => {
  const { error, status } = await client('sb_publishable_not_a_real_key').from('x').select();
  assert.equal(status, 401);
  assert.equal(error.message, 'Invalid API key');
});

test('the publishable key and the legacy anon key both pass the gateway', async () => {
  for (const key of [PUBLISHABLE_KEY, ANON_KEY]) {
    const { status } = await client(key).from('no_such_table').select();
    assert.equal(status, 404, `key ${key.slice(0, 16)}… should pass the gateway`);
  }
});

test('the apikey query parameter is accepted', async () => {
  const response = await fetch(`${API_URL}/rest/v1/no_such_table?apikey=${PUBLISHABLE_KEY}`);
  assert.equal(response.status, 404);
});

test('CORS preflight from a browser origin succeeds', async () => {
  const response = await fetch(`${API_URL}/rest/v1/bottles?select=*`, {
    method: 'OPTIONS',
    headers: {
      origin: 'http://localhost:5173',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'apikey,authorization,content-type,x-client-info,prefer',
    },
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('access-control-allow-origin'), '*');
  assert.equal(
    response.headers.get('access-control-allow-headers'),
    'apikey,authorization,content-type,x-client-info,prefer',
  );
  assert.match(response.headers.get('access-control-allow-methods'), /POST/);
  assert.equal(response.headers.get('access-control-max-age'), '86400');
});

test('health answers 200', async () => {
  const response = await fetch(`${API_URL}/health`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { status: 'ok', database: 'ok' });
});
