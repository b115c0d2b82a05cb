// supabase-js auth.admin against /auth/v1/admin: create, list (pagination), get, update (ban,
// app_metadata), soft and hard delete, generateLink, inviteUserByEmail, factors; not_admin.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { API_URL, SECRET_KEY, SERVICE_ROLE_KEY, client } from './env.mjs';

const PASSWORD = 'correct-horse-1';
const admin = () => client(SERVICE_ROLE_KEY).auth.admin;

function email(label) {
  return `${label}-${randomUUID().slice(0, 8)}@example.com`;
}

test('admin calls need the service role: not_admin otherwise', async () => {
  const { error } = await client().auth.admin.listUsers();
  assert.equal(error.code, 'not_admin');
  assert.equal(error.status, 403);
  const viaUser = client();
  await viaUser.auth.signUp({ email: email('plain'), password: PASSWORD });
  const session = (await viaUser.auth.getSession()).data.session;
  const asUser = client(undefined, { global: { headers: { Authorization: `Bearer ${session.access_token}` } } });
  assert.equal((await asUser.auth.admin.getUserById(session.user.id)).error.code, 'not_admin');
  // The opaque secret key is an admin key too.
  const { error: secretError } = await client(SECRET_KEY).auth.admin.listUsers({ page: 1, perPage: 1 });
  assert.equal(secretError, null);
});

test('createUser, getUserById, updateUserById and listUsers', async () => {
  const address = email('admin-create');
  const created = await admin().createUser({
    email: address,
    password: PASSWORD,
    email_confirm: true,
    user_metadata: { name: 'Driver' },
    app_metadata: { org: 'north' },
  });
  assert.equal(created.error, null);
  const user = created.data.user;
  assert.equal(user.email, address);
  assert.ok(user.email_confirmed_at);
  assert.deepEqual(user.app_metadata, { org: 'north', provider: 'email', providers: ['email'] });
  assert.deepEqual(user.user_metadata, { name: 'Driver' });
  const duplicate = await admin().createUser({ email: address, password: PASSWORD });
  assert.equal(duplicate.error.code, 'email_exists');
  assert.equal(duplicate.error.status, 422);
  const unconfirmed = await admin().createUser({ email: email('unconfirmed'), password: PASSWORD });
  assert.equal(unconfirmed.data.user.email_confirmed_at, undefined);
  const notConfirmed = await client().auth.signInWithPassword({
    email: unconfirmed.data.user.email,
    password: PASSWORD,
  });
  assert.equal(notConfirmed.error.code, 'email_not_confirmed');

  const fetched = await admin().getUserById(user.id);
  assert.equal(fetched.data.user.id, user.id);
  const missing = await admin().getUserById(randomUUID());
  assert.equal(missing.error.code, 'user_not_found');
  assert.equal(missing.error.status, 404);

  const updated = await admin().updateUserById(user.id, {
    app_metadata: { role: 'dispatcher' },
    user_metadata: { phone_model: 'x' },
    ban_duration: '24h',
  });
  assert.equal(updated.error, null);
  assert.equal(updated.data.user.app_metadata.role, 'dispatcher');
  assert.equal(updated.data.user.app_metadata.org, 'north');
  assert.deepEqual(updated.data.user.user_metadata, { name: 'Driver', phone_model: 'x' });
  assert.ok(new Date(updated.data.user.banned_until) > new Date(Date.now() + 23 * 3600_000));
  const banned = await client().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(banned.error.code, 'user_banned');
  const unbanned = await admin().updateUserById(user.id, { ban_duration: 'none', password: 'changed-by-admin' });
  assert.equal(unbanned.data.user.banned_until, undefined);
  const login = await client().auth.signInWithPassword({ email: address, password: 'changed-by-admin' });
  assert.equal(login.error, null);
  assert.equal(login.data.user.app_metadata.role, 'dispatcher');

  // auth-js reads only the first digit of each page number in the Link header, and the other
  // suites create users concurrently: size the pages so that the last one stays below 10.
  const { data: probe } = await admin().listUsers({ page: 1, perPage: 1 });
  assert.ok(probe.total >= 3, String(probe.total));
  const perPage = Math.ceil(probe.total / 3);
  const page = await admin().listUsers({ page: 1, perPage });
  assert.equal(page.error, null);
  assert.equal(page.data.users.length, perPage);
  assert.ok(page.data.total >= probe.total, String(page.data.total));
  assert.equal(page.data.nextPage, 2);
  assert.equal(page.data.lastPage, Math.ceil(page.data.total / perPage));
  const raw = await fetch(`${API_URL}/auth/v1/admin/users?page=1&per_page=2`, {
    headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` },
  });
  assert.equal(raw.headers.get('x-total-count'), String(page.data.total));
  assert.match(raw.headers.get('link'), /^<\/auth\/v1\/admin\/users\?page=2&per_page=2>; rel="next", <\/auth\/v1\/admin\/users\?page=\d+&per_page=2>; rel="last"$/);
});

test('deleteUser: soft delete keeps the row and signs out, hard delete removes it', async () => {
  const address = email('admin-delete');
  const { data } = await admin().createUser({ email: address, password: PASSWORD, email_confirm: true });
  const id = data.user.id;
  const device = client();
  const { data: signedIn } = await device.auth.signInWithPassword({ email: address, password: PASSWORD });
  const soft = await admin().deleteUser(id, true);
  assert.equal(soft.error, null);
  const kept = await admin().getUserById(id);
  assert.ok(kept.data.user.deleted_at);
  assert.equal((await client().auth.signInWithPassword({ email: address, password: PASSWORD })).error.code, 'invalid_credentials');
  assert.ok((await client().auth.getUser(signedIn.session.access_token)).error);
  // The address is free again.
  const reused = await admin().createUser({ email: address, password: PASSWORD, email_confirm: true });
  assert.equal(reused.error, null);
  const hard = await admin().deleteUser(reused.data.user.id);
  assert.equal(hard.error, null);
  assert.equal((await admin().getUserById(reused.data.user.id)).error.code, 'user_not_found');
});

test('generateLink returns the link, code and hash for every type without sending mail', async () => {
  const address = email('admin-link');
  const signup = await admin().generateLink({ type: 'signup', email: address, password: PASSWORD, options: { data: { via: 'link' } } });
  assert.equal(signup.error, null);
  const { properties, user } = signup.data;
  assert.equal(user.email, address);
  assert.equal(properties.verification_type, 'signup');
  assert.match(properties.email_otp, /^\d{6}$/);
  assert.match(properties.hashed_token, /^[0-9a-f]{56}$/);
  assert.ok(properties.action_link.includes(`token=${properties.hashed_token}`));
  assert.ok(properties.action_link.includes('type=signup'));

  for (const type of ['magiclink', 'recovery']) {
    const link = await admin().generateLink({ type, email: address });
    assert.equal(link.error, null, type);
    assert.equal(link.data.properties.verification_type, type);
  }
  const next = email('admin-link-new');
  for (const type of ['email_change_current', 'email_change_new']) {
    const link = await admin().generateLink({ type, email: address, newEmail: next });
    assert.equal(link.error, null, type);
    assert.equal(link.data.user.new_email, next);
  }
  const invite = await admin().generateLink({ type: 'invite', email: email('admin-link-invite') });
  assert.equal(invite.error, null);
  assert.ok(invite.data.user.invited_at);
  const unknown = await admin().generateLink({ type: 'recovery', email: email('nobody') });
  assert.equal(unknown.error.code, 'user_not_found');
  // No mail was sent for any of them (auth-email.test.mjs verifies generated tokens).
  const response = await fetch(`${API_URL}/auth/v1/admin/mailbox?email=${encodeURIComponent(address)}`, {
    headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` },
  });
  assert.deepEqual(await response.json(), []);
});

test('inviteUserByEmail creates an invited user and mails the invite', async () => {
  const address = email('admin-invite');
  const { data, error } = await admin().inviteUserByEmail(address, { data: { team: 'depot' } });
  assert.equal(error, null);
  assert.equal(data.user.email, address);
  assert.ok(data.user.invited_at);
  assert.deepEqual(data.user.user_metadata, { team: 'depot' });
  const response = await fetch(`${API_URL}/auth/v1/admin/mailbox?email=${encodeURIComponent(address)}`, {
    headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` },
  });
  const mails = await response.json();
  assert.equal(mails[0].type, 'invite');
  assert.equal(mails[0].subject, 'You have been invited');
  const again = await admin().inviteUserByEmail(address);
  assert.equal(again.error.code, 'over_email_send_rate_limit');
});

test('admin listFactors and deleteFactor', async () => {
  const user = client();
  const address = email('admin-factor');
  await user.auth.signUp({ email: address, password: PASSWORD });
  const enrolled = await user.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'laptop' });
  assert.equal(enrolled.error, null);
  const userId = (await user.auth.getSession()).data.session.user.id;
  const listed = await admin().mfa.listFactors({ userId });
  assert.equal(listed.error, null);
  assert.equal(listed.data.factors.length, 1);
  assert.equal(listed.data.factors[0].id, enrolled.data.id);
  assert.equal(listed.data.factors[0].status, 'unverified');
  const deleted = await admin().mfa.deleteFactor({ userId, id: enrolled.data.id });
  assert.equal(deleted.error, null);
  // auth-js hands back the raw `{data}` wrapper here; the body is the deleted factor.
  assert.equal(deleted.data.data.id, enrolled.data.id);
  assert.equal((await admin().mfa.listFactors({ userId })).data.factors.length, 0);
});

test('admin signOut ends the sessions of the user behind an access token, per scope', async () => {
  const address = email('admin-signout');
  await admin().createUser({ email: address, password: PASSWORD, email_confirm: true });
  const tokens = [];
  for (let device = 0; device < 3; device += 1) {
    const { data } = await client().auth.signInWithPassword({ email: address, password: PASSWORD });
    tokens.push(data.session.access_token);
  }
  const alive = async (token) => !(await client().auth.getUser(token)).error;

  assert.equal((await admin().signOut(tokens[0], 'local')).error, null);
  assert.deepEqual(await Promise.all(tokens.map(alive)), [false, true, true]);
  assert.equal((await admin().signOut(tokens[1], 'global')).error, null);
  assert.deepEqual(await Promise.all(tokens.map(alive)), [false, false, false]);
  const gone = await client().auth.getUser(tokens[2]);
  assert.equal(gone.error.name, 'AuthSessionMissingError');
  // A key instead of a user token names no session: auth-js hands back the 403 bad_jwt.
  const notAUser = await admin().signOut(SERVICE_ROLE_KEY);
  assert.equal(notAUser.error.code, 'bad_jwt');
  assert.equal(notAUser.error.status, 403);
});
