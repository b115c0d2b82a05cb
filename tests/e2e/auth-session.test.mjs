// supabase-js auth: sign-up, sign-in, the session and user, refresh, updateUser, signOut scopes,
// anonymous sign-in and getClaims verified locally against the ES256 JWK set.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { API_URL, ANON_KEY, client } from './env.mjs';

const PASSWORD = 'correct-horse-1';

function email(label) {
  return `${label}-${randomUUID().slice(0, 8)}@example.com`;
}

async function signedUp(label) {
  const supabase = client();
  const address = email(label);
  const { data, error } = await supabase.auth.signUp({ email: address, password: PASSWORD });
  assert.equal(error, null);
  return { supabase, address, session: data.session, user: data.user };
}

test('signUp returns a session and the GoTrue user shape', async () => {
  const supabase = client();
  const address = email('Signup');
  const { data, error } = await supabase.auth.signUp({
    email: address,
    password: PASSWORD,
    options: { data: { display_name: 'Ann' } },
  });
  assert.equal(error, null);
  const { session, user } = data;
  assert.equal(session.token_type, 'bearer');
  assert.equal(session.expires_in, 3600);
  assert.ok(session.expires_at > Date.now() / 1000);
  assert.match(session.refresh_token, /^[a-z0-9]{12}$/);
  assert.equal(user.email, address.toLowerCase());
  assert.equal(user.aud, 'authenticated');
  assert.equal(user.role, 'authenticated');
  assert.equal(user.phone, '');
  assert.equal(user.is_anonymous, false);
  assert.deepEqual(user.app_metadata, { provider: 'email', providers: ['email'] });
  assert.deepEqual(user.user_metadata, { display_name: 'Ann' });
  assert.ok(user.email_confirmed_at && user.confirmed_at && user.last_sign_in_at);
  assert.equal(user.identities.length, 1);
  assert.equal(user.identities[0].provider, 'email');
  assert.equal(user.identities[0].id, user.id);
  assert.equal(user.identities[0].identity_data.email, address.toLowerCase());
  assert.equal(user.factors, undefined);
  assert.match(user.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
});

test('signUp errors: user_already_exists, weak_password, invalid email', async () => {
  const { address } = await signedUp('dup');
  const again = await client().auth.signUp({ email: address.toUpperCase(), password: PASSWORD });
  assert.equal(again.error.code, 'user_already_exists');
  assert.equal(again.error.status, 422);
  assert.equal(again.error.message, 'User already registered');

  const weak = await client().auth.signUp({ email: email('weak'), password: '123' });
  assert.equal(weak.error.name, 'AuthWeakPasswordError');
  assert.equal(weak.error.code, 'weak_password');
  assert.deepEqual(weak.error.reasons, ['length']);

  const invalid = await client().auth.signUp({ email: 'not-an-email', password: PASSWORD });
  assert.equal(invalid.error.code, 'validation_failed');
  assert.equal(invalid.error.status, 400);
});

test('signInWithPassword, getSession and getUser; invalid_credentials for both wrong cases', async () => {
  const { address } = await signedUp('signin');
  const supabase = client();
  const { data, error } = await supabase.auth.signInWithPassword({
    email: address.toUpperCase(),
    password: PASSWORD,
  });
  assert.equal(error, null);
  assert.equal(data.user.email, address.toLowerCase());
  const stored = await supabase.auth.getSession();
  assert.equal(stored.data.session.access_token, data.session.access_token);
  const me = await supabase.auth.getUser();
  assert.equal(me.error, null);
  assert.equal(me.data.user.id, data.user.id);

  const wrongPassword = await client().auth.signInWithPassword({ email: address, password: 'nope-nope' });
  assert.equal(wrongPassword.error.code, 'invalid_credentials');
  assert.equal(wrongPassword.error.status, 400);
  const unknownUser = await client().auth.signInWithPassword({
    email: email('nobody'),
    password: PASSWORD,
  });
  assert.equal(unknownUser.error.code, 'invalid_credentials');
  assert.equal(unknownUser.error.message, wrongPassword.error.message);
});

test('refreshSession rotates the token; a late reuse is refresh_token_already_used', async () => {
  const { supabase, session } = await signedUp('refresh');
  const first = await supabase.auth.refreshSession();
  assert.equal(first.error, null);
  assert.notEqual(first.data.session.refresh_token, session.refresh_token);
  assert.notEqual(first.data.session.access_token, session.access_token);
  // Re-presenting the parent of the active token returns that active token (a lost answer).
  const retry = await client().auth.refreshSession({ refresh_token: session.refresh_token });
  assert.equal(retry.error, null);
  assert.equal(retry.data.session.refresh_token, first.data.session.refresh_token);
  const second = await supabase.auth.refreshSession();
  assert.equal(second.error, null);
  // The original is now two generations old; inside 10 s it still gets a child, so wait it out.
  await new Promise((resolve) => setTimeout(resolve, 10_500));
  const late = await client().auth.refreshSession({ refresh_token: session.refresh_token });
  assert.equal(late.error.code, 'refresh_token_already_used');
  assert.equal(late.error.status, 400);
  // The family is revoked: the newest token no longer works either.
  const revoked = await client().auth.refreshSession({
    refresh_token: second.data.session.refresh_token,
  });
  assert.equal(revoked.error.code, 'refresh_token_already_used');
});

test('updateUser merges metadata and changes the password, signing out other sessions', async () => {
  const { supabase, address } = await signedUp('update');
  const other = client();
  await other.auth.signInWithPassword({ email: address, password: PASSWORD });
  const otherSession = (await other.auth.getSession()).data.session;

  const merged = await supabase.auth.updateUser({ data: { theme: 'dark', plan: 'pro' } });
  assert.equal(merged.error, null);
  const removed = await supabase.auth.updateUser({ data: { plan: null, lang: 'de' } });
  assert.deepEqual(removed.data.user.user_metadata, { theme: 'dark', lang: 'de' });

  const same = await supabase.auth.updateUser({ password: PASSWORD });
  assert.equal(same.error.code, 'same_password');
  const weak = await supabase.auth.updateUser({ password: 'abc' });
  assert.equal(weak.error.code, 'weak_password');
  const changed = await supabase.auth.updateUser({ password: 'another-pass-2' });
  assert.equal(changed.error, null);

  const oldLogin = await client().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(oldLogin.error.code, 'invalid_credentials');
  const newLogin = await client().auth.signInWithPassword({ email: address, password: 'another-pass-2' });
  assert.equal(newLogin.error, null);
  // The other device's session is gone: its refresh fails and getUser reports the session.
  const stale = await client().auth.refreshSession({ refresh_token: otherSession.refresh_token });
  assert.ok(['session_not_found', 'refresh_token_not_found'].includes(stale.error.code), stale.error.code);
  const ghost = await client().auth.getUser(otherSession.access_token);
  assert.equal(ghost.error.name, 'AuthSessionMissingError');
  // The current session survives.
  assert.equal((await supabase.auth.getUser()).error, null);
});

test('signOut scopes: local, others and global', async () => {
  const { address } = await signedUp('signout');
  const devices = [client(), client(), client(), client()];
  const tokens = [];
  for (const device of devices) {
    const { data } = await device.auth.signInWithPassword({ email: address, password: PASSWORD });
    tokens.push(data.session.access_token);
  }
  const alive = async (token) => !(await client().auth.getUser(token)).error;

  assert.equal((await devices[0].auth.signOut({ scope: 'local' })).error, null);
  assert.equal(await alive(tokens[0]), false);
  assert.equal(await alive(tokens[1]), true);
  const missing = await client().auth.getUser(tokens[0]);
  assert.equal(missing.error.name, 'AuthSessionMissingError');

  assert.equal((await devices[1].auth.signOut({ scope: 'others' })).error, null);
  assert.equal(await alive(tokens[1]), true);
  assert.equal(await alive(tokens[2]), false);
  assert.equal(await alive(tokens[3]), false);

  const again = client();
  const { data } = await again.auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal((await devices[1].auth.signOut()).error, null);
  assert.equal(await alive(tokens[1]), false);
  assert.equal(await alive(data.session.access_token), false);
  assert.equal((await devices[1].auth.getSession()).data.session, null);
});

test('session_not_found after sign-out: raw error code in the 2024 format', async () => {
  const { supabase, session } = await signedUp('gone');
  await supabase.auth.signOut();
  const response = await fetch(`${API_URL}/auth/v1/user`, {
    headers: {
      apikey: ANON_KEY,
      authorization: `Bearer ${session.access_token}`,
      'x-supabase-api-version': '2024-01-01',
    },
  });
  assert.equal(response.status, 403);
  assert.equal(response.headers.get('x-supabase-api-version'), '2024-01-01');
  assert.deepEqual(await response.json(), {
    code: 'session_not_found',
    message: 'Session from session_id claim in JWT does not exist',
  });
  // Without the version header: the legacy shape.
  const legacy = await fetch(`${API_URL}/auth/v1/user`, {
    headers: { apikey: ANON_KEY, authorization: `Bearer ${session.access_token}` },
  });
  assert.equal(legacy.headers.get('x-sb-error-code'), 'session_not_found');
  assert.deepEqual(await legacy.json(), {
    code: 403,
    error_code: 'session_not_found',
    msg: 'Session from session_id claim in JWT does not exist',
  });
});

test('signInAnonymously creates an anonymous authenticated user', async () => {
  const supabase = client();
  const { data, error } = await supabase.auth.signInAnonymously({ options: { data: { cart: 3 } } });
  assert.equal(error, null);
  assert.equal(data.user.is_anonymous, true);
  assert.equal(data.user.role, 'authenticated');
  assert.equal(data.user.email, '');
  assert.deepEqual(data.user.identities, []);
  assert.deepEqual(data.user.user_metadata, { cart: 3 });
  const { data: claims } = await supabase.auth.getClaims();
  assert.equal(claims.claims.is_anonymous, true);
  assert.equal(claims.claims.amr[0].method, 'anonymous');
  // An anonymous user cannot set a password before it has an email.
  const password = await supabase.auth.updateUser({ password: PASSWORD });
  assert.equal(password.error.code, 'validation_failed');
});

test('getClaims verifies the ES256 access token with the published JWK set', async () => {
  const calls = [];
  const recordingFetch = (url, init) => {
    calls.push(String(url));
    return fetch(url, init);
  };
  // Its own storage key: auth-js caches the JWK set per storage key across clients.
  const supabase = client(ANON_KEY, {
    global: { fetch: recordingFetch },
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, storageKey: 'claims-test' },
  });
  const address = email('claims');
  const { data: signup } = await supabase.auth.signUp({ email: address, password: PASSWORD });
  calls.length = 0;
  const { data, error } = await supabase.auth.getClaims();
  assert.equal(error, null);
  assert.equal(data.header.alg, 'ES256');
  assert.ok(data.header.kid);
  assert.equal(data.claims.sub, signup.user.id);
  assert.equal(data.claims.email, address.toLowerCase());
  assert.equal(data.claims.aud, 'authenticated');
  assert.equal(data.claims.role, 'authenticated');
  assert.equal(data.claims.aal, 'aal1');
  assert.equal(data.claims.session_id.length, 36);
  assert.deepEqual(data.claims.amr.map((entry) => entry.method), ['password']);
  // Verified locally: the JWK set was fetched and /user was not called.
  assert.ok(calls.some((url) => url.endsWith('/auth/v1/.well-known/jwks.json')), calls.join(' '));
  assert.ok(!calls.some((url) => url.endsWith('/auth/v1/user')), calls.join(' '));

  const jwks = await (await fetch(`${API_URL}/auth/v1/.well-known/jwks.json`)).json();
  assert.equal(jwks.keys.length, 1);
  assert.equal(jwks.keys[0].kid, data.header.kid);
  assert.equal(jwks.keys[0].d, undefined);

  // A tampered token fails local verification.
  const [h, p] = signup.session.access_token.split('.');
  const forged = `${h}.${p}.${Buffer.from('x'.repeat(64)).toString('base64url')}`;
  const bad = await supabase.auth.getClaims(forged);
  assert.ok(bad.error);
});

test('settings and health describe the server', async () => {
  const settings = await (await fetch(`${API_URL}/auth/v1/settings`, { headers: { apikey: ANON_KEY } })).json();
  assert.equal(settings.external.email, true);
  assert.equal(settings.external.anonymous_users, true);
  assert.equal(settings.mailer_autoconfirm, true);
  const health = await (await fetch(`${API_URL}/auth/v1/health`, { headers: { apikey: ANON_KEY } })).json();
  assert.equal(health.name, 'GoTrue');
});
