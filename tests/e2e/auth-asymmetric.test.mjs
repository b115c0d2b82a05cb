// Tokens issued by /auth/v1 are ES256 in this suite (tests/run.sh configures
// MANIFOLD_AUTH__SIGNING_KEYS): a user signed in through supabase-js uses that token, unchanged,
// with REST under RLS, Storage under the bucket policies and a Realtime channel join. Fixtures:
// fixtures.diary (0002_rest_write.sql) and the org-scratch bucket (0020_storage.sql).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';

import { SERVICE_ROLE_KEY, client } from './env.mjs';

const PASSWORD = 'correct-horse-1';
const WAIT_MS = 15000;
const clients = [];

after(async () => {
  await Promise.all(clients.map((c) => c.removeAllChannels()));
});

/** The decoded header (0) or payload (1) of a JWT. */
function segment(token, index) {
  return JSON.parse(Buffer.from(token.split('.')[index], 'base64url'));
}

/** A supabase-js client signed up (and so signed in) as a new user. */
async function signedIn(label) {
  const supabase = client();
  clients.push(supabase);
  const email = `${label}-${randomUUID().slice(0, 8)}@example.com`;
  const { data, error } = await supabase.auth.signUp({ email, password: PASSWORD });
  assert.equal(error, null);
  const header = segment(data.session.access_token, 0);
  assert.equal(header.alg, 'ES256');
  assert.ok(header.kid, 'the token names its key');
  return { supabase, user: data.user, token: data.session.access_token };
}

/** The token with its signature replaced by another valid-looking one. */
function forged(token) {
  const [header, payload, signature] = token.split('.');
  const flipped = Buffer.from(signature, 'base64url');
  flipped[0] ^= 0xff;
  return `${header}.${payload}.${flipped.toString('base64url')}`;
}

test('REST: the ES256 token of a signed-in user reads and writes only its own diary rows', async () => {
  const alice = await signedIn('alice');
  const bob = await signedIn('bob');
  const diary = (who) => who.supabase.schema('fixtures').from('diary');

  const written = await diary(alice).insert([{ body: 'alice 1' }, { body: 'alice 2' }]).select('owner, body');
  assert.equal(written.error, null);
  assert.deepEqual(written.data, [
    { owner: alice.user.id, body: 'alice 1' },
    { owner: alice.user.id, body: 'alice 2' },
  ]);
  assert.equal((await diary(bob).insert({ body: 'bob 1' })).error, null);

  const mine = await diary(alice).select('owner, body').order('id');
  assert.equal(mine.error, null);
  assert.deepEqual(mine.data, written.data);
  const theirs = await diary(bob).select('body');
  assert.deepEqual(theirs.data, [{ body: 'bob 1' }]);

  // The signature is checked against the published key, not just decoded.
  const impostor = client(undefined, { accessToken: async () => forged(alice.token) });
  const refused = await impostor.schema('fixtures').from('diary').select('body');
  assert.equal(refused.status, 401);
  assert.equal(refused.data, null);
});

test('Storage: the same token uploads and downloads in its organization folder of org-scratch', async () => {
  const alice = await signedIn('files');
  const stranger = await signedIn('stranger');
  const org = randomUUID();
  // The org-scratch policies read the organization from the token's app_metadata: set it as an
  // admin, then refresh so the next ES256 token carries it.
  const updated = await client(SERVICE_ROLE_KEY).auth.admin.updateUserById(alice.user.id, {
    app_metadata: { organization_id: org },
  });
  assert.equal(updated.error, null);
  const refreshed = await alice.supabase.auth.refreshSession();
  assert.equal(refreshed.error, null);
  const token = refreshed.data.session.access_token;
  assert.equal(segment(token, 0).alg, 'ES256');
  assert.equal(segment(token, 1).app_metadata.organization_id, org);

  const path = `${org}/notes/hello.txt`;
  try {
    const files = alice.supabase.storage.from('org-scratch');
    const uploaded = await files.upload(path, Buffer.from('signed with ES256'), { contentType: 'text/plain' });
    assert.equal(uploaded.error, null);
    assert.equal(uploaded.data.path, path);
    const downloaded = await files.download(path);
    assert.equal(downloaded.error, null);
    assert.equal(await downloaded.data.text(), 'signed with ES256');

    // Another user's token is valid too, but the policies show it nothing of that organization.
    const denied = await stranger.supabase.storage.from('org-scratch').download(path);
    assert.equal(denied.data, null);
    assert.ok(denied.error);
    const impostor = client(undefined, { accessToken: async () => forged(token) });
    const forgedDownload = await impostor.storage.from('org-scratch').download(path);
    assert.equal(forgedDownload.data, null);
    assert.ok(forgedDownload.error);
  } finally {
    await client(SERVICE_ROLE_KEY).storage.from('org-scratch').remove([path]);
  }
});

/** Subscribes and resolves on SUBSCRIBED; rejects on the first error status. */
async function subscribe(channel) {
  // The join carries the token the client holds once setAuth has resolved.
  await channel.socket.setAuth();
  return new Promise((resolve, reject) => {
    channel.subscribe((status, error) => {
      if (status === 'SUBSCRIBED') resolve();
      else if (status === 'CHANNEL_ERROR' || status === 'TIMED_OUT') reject(error ?? new Error(status));
    });
  });
}

test('Realtime: the same token joins a broadcast channel; a forged one is refused', async () => {
  const alice = await signedIn('live');
  const topic = `asymmetric-${randomUUID()}`;
  let heard;
  const received = new Promise((resolve, reject) => {
    heard = resolve;
    setTimeout(() => reject(new Error('timed out waiting for the broadcast')), WAIT_MS).unref();
  });
  const channel = alice.supabase
    .channel(topic, { config: { broadcast: { self: true, ack: true } } })
    .on('broadcast', { event: 'ping' }, (message) => heard(message));
  await subscribe(channel);
  assert.equal(await channel.send({ type: 'broadcast', event: 'ping', payload: { n: 1 } }), 'ok');
  assert.deepEqual((await received).payload, { n: 1 });

  const impostor = client(undefined, { accessToken: async () => forged(alice.token) });
  clients.push(impostor);
  await assert.rejects(subscribe(impostor.channel(`${topic}-forged`)), /InvalidJWTToken/);
});
