// supabase-js email flows with codes and links read from the dev mailbox (no SMTP configured):
// password recovery, OTP and magic links, PKCE, email change, reauthentication, and the default
// rate limit on /verify (last: it exhausts this IP's /verify bucket).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { ANON_KEY, API_URL, SERVICE_ROLE_KEY, client } from './env.mjs';

const PASSWORD = 'correct-horse-1';
const REDIRECT = 'http://localhost:3000/welcome';

function email(label) {
  return `${label}-${randomUUID().slice(0, 8)}@example.com`;
}

/** Messages of the dev mailbox for `address`, newest first (service role only). */
async function mailbox(address) {
  const response = await fetch(
    `${API_URL}/auth/v1/admin/mailbox?email=${encodeURIComponent(address)}`,
    { headers: { apikey: SERVICE_ROLE_KEY, authorization: `Bearer ${SERVICE_ROLE_KEY}` } },
  );
  assert.equal(response.status, 200);
  return response.json();
}

async function latestMail(address, type) {
  const messages = (await mailbox(address)).filter((message) => message.type === type);
  assert.ok(messages.length > 0, `no ${type} mail for ${address}`);
  return messages[0];
}

async function signedUp(label) {
  const address = email(label);
  const { error } = await client().auth.signUp({ email: address, password: PASSWORD });
  assert.equal(error, null);
  return address;
}

test('the dev mailbox is for the service role only', async () => {
  const response = await fetch(`${API_URL}/auth/v1/admin/mailbox`, {
    headers: { apikey: ANON_KEY, authorization: `Bearer ${ANON_KEY}`, 'x-supabase-api-version': '2024-01-01' },
  });
  assert.equal(response.status, 403);
  assert.equal((await response.json()).code, 'not_admin');
});

test('resetPasswordForEmail + verifyOtp(recovery) with the mailed code, then a new password', async () => {
  const address = await signedUp('recover');
  const supabase = client();
  const events = [];
  supabase.auth.onAuthStateChange((event) => events.push(event));
  const sent = await supabase.auth.resetPasswordForEmail(address, { redirectTo: REDIRECT });
  assert.equal(sent.error, null);
  const mail = await latestMail(address, 'recovery');
  assert.equal(mail.subject, 'Reset Your Password');
  assert.match(mail.otp, /^\d{6}$/);
  assert.ok(mail.body.includes(mail.otp));
  assert.ok(mail.link.startsWith(`${API_URL}/auth/v1/verify?token=`), mail.link);
  assert.ok(mail.link.includes('type=recovery'));

  const verified = await supabase.auth.verifyOtp({ email: address, token: mail.otp, type: 'recovery' });
  assert.equal(verified.error, null);
  assert.equal(verified.data.user.email, address);
  assert.ok(events.includes('PASSWORD_RECOVERY'), events.join(','));
  assert.equal((await supabase.auth.updateUser({ password: 'brand-new-pass' })).error, null);
  const login = await client().auth.signInWithPassword({ email: address, password: 'brand-new-pass' });
  assert.equal(login.error, null);

  // A spent code does not work twice.
  const reused = await client().auth.verifyOtp({ email: address, token: mail.otp, type: 'recovery' });
  assert.equal(reused.error.code, 'otp_expired');
  assert.equal(reused.error.status, 403);
  // Another mail to the same address within 60 s is refused; unknown addresses look the same as
  // known ones.
  const again = await client().auth.resetPasswordForEmail(address);
  assert.equal(again.error.code, 'over_email_send_rate_limit');
  assert.equal(again.error.status, 429);
  const unknown = await client().auth.resetPasswordForEmail(email('nobody'));
  assert.equal(unknown.error, null);
});

test('signInWithOtp creates the user and the mailed code signs in (type email)', async () => {
  const address = email('otp');
  const supabase = client();
  const { error } = await supabase.auth.signInWithOtp({
    email: address,
    options: { data: { source: 'otp' } },
  });
  assert.equal(error, null);
  const mail = await latestMail(address, 'signup');
  const { data, error: verifyError } = await supabase.auth.verifyOtp({
    email: address,
    token: mail.otp,
    type: 'email',
  });
  assert.equal(verifyError, null);
  assert.equal(data.user.email, address);
  assert.ok(data.user.email_confirmed_at);
  assert.deepEqual(data.user.user_metadata, { source: 'otp' });
  assert.equal((await supabase.auth.getClaims()).data.claims.amr[0].method, 'otp');

  const refused = await client().auth.signInWithOtp({
    email: email('nocreate'),
    options: { shouldCreateUser: false },
  });
  assert.equal(refused.error.code, 'otp_disabled');
  assert.equal(refused.error.status, 422);
});

test('a magic link works as token_hash and as a browser link with tokens in the fragment', async () => {
  const address = await signedUp('magic');
  assert.equal((await client().auth.signInWithOtp({ email: address })).error, null);
  const mail = await latestMail(address, 'magiclink');
  const tokenHash = new URL(mail.link).searchParams.get('token');
  const { data, error } = await client().auth.verifyOtp({ token_hash: tokenHash, type: 'magiclink' });
  assert.equal(error, null);
  assert.equal(data.user.email, address);

  // The browser link (GET /verify, no apikey) for a recovery: 303 with the session in the fragment.
  const other = await signedUp('link');
  await client().auth.resetPasswordForEmail(other, { redirectTo: REDIRECT });
  const recovery = await latestMail(other, 'recovery');
  const response = await fetch(recovery.link, { redirect: 'manual' });
  assert.equal(response.status, 303);
  const location = new URL(response.headers.get('location'));
  assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
  const fragment = new URLSearchParams(location.hash.slice(1));
  assert.equal(fragment.get('type'), 'recovery');
  assert.equal(fragment.get('token_type'), 'bearer');
  const user = await client().auth.getUser(fragment.get('access_token'));
  assert.equal(user.data.user.email, other);
  // Following it again: an error, also in the fragment.
  const second = await fetch(recovery.link, { redirect: 'manual' });
  const failed = new URLSearchParams(new URL(second.headers.get('location')).hash.slice(1));
  assert.equal(failed.get('error_code'), 'otp_expired');
  assert.equal(failed.get('error'), 'access_denied');
});

test('exchangeCodeForSession completes a PKCE recovery', async () => {
  const address = await signedUp('pkce');
  const supabase = client(ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false, flowType: 'pkce' },
  });
  const sent = await supabase.auth.resetPasswordForEmail(address, { redirectTo: REDIRECT });
  assert.equal(sent.error, null);
  const mail = await latestMail(address, 'recovery');
  assert.ok(new URL(mail.link).searchParams.get('token').startsWith('pkce_'), mail.link);
  const response = await fetch(mail.link, { redirect: 'manual' });
  assert.equal(response.status, 303);
  const location = new URL(response.headers.get('location'));
  assert.equal(`${location.origin}${location.pathname}`, REDIRECT);
  const code = location.searchParams.get('code');
  assert.ok(code);
  const { data, error } = await supabase.auth.exchangeCodeForSession(code);
  assert.equal(error, null);
  assert.equal(data.user.email, address);
  assert.equal(data.session.user.email, address);
  const { data: claims } = await supabase.auth.getClaims();
  assert.equal(claims.claims.amr[0].method, 'recovery');
  // A code is single-use.
  const twice = await fetch(`${API_URL}/auth/v1/token?grant_type=pkce`, {
    method: 'POST',
    headers: { apikey: ANON_KEY, 'content-type': 'application/json', 'x-supabase-api-version': '2024-01-01' },
    body: JSON.stringify({ auth_code: code, code_verifier: 'x'.repeat(64) }),
  });
  assert.equal(twice.status, 404);
  assert.equal((await twice.json()).code, 'flow_state_not_found');
});

test('email change needs both the current and the new address confirmed', async () => {
  const address = await signedUp('change');
  const supabase = client();
  await supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  const next = email('changed');
  const { data, error } = await supabase.auth.updateUser({ email: next });
  assert.equal(error, null);
  assert.equal(data.user.new_email, next);
  assert.ok(data.user.email_change_sent_at);
  assert.equal(data.user.email, address);

  const toNew = await latestMail(next, 'email_change');
  const toCurrent = await latestMail(address, 'email_change');
  const half = await supabase.auth.verifyOtp({ email: next, token: toNew.otp, type: 'email_change' });
  assert.equal(half.error, null);
  assert.equal(half.data.session, null);
  const done = await supabase.auth.verifyOtp({ email: address, token: toCurrent.otp, type: 'email_change' });
  assert.equal(done.error, null);
  assert.equal(done.data.user.email, next);
  const login = await client().auth.signInWithPassword({ email: next, password: PASSWORD });
  assert.equal(login.error, null);
});

test('reauthenticate mails a nonce that authorises a password change', async () => {
  const address = await signedUp('reauth');
  const supabase = client();
  await supabase.auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal((await supabase.auth.reauthenticate()).error, null);
  const mail = await latestMail(address, 'reauthentication');
  const wrong = await supabase.auth.updateUser({ password: 'next-pass-3', nonce: '000000' });
  assert.equal(wrong.error.code, 'reauthentication_not_valid');
  const right = await supabase.auth.updateUser({ password: 'next-pass-3', nonce: mail.otp });
  assert.equal(right.error, null);
});

test('tokens from admin generateLink verify: signup code and magic link hash', async () => {
  const admin = client(SERVICE_ROLE_KEY).auth.admin;
  const address = email('generated');
  const signup = await admin.generateLink({ type: 'signup', email: address, password: PASSWORD });
  assert.equal(signup.error, null);
  const confirmed = await client().auth.verifyOtp({
    email: address,
    token: signup.data.properties.email_otp,
    type: 'signup',
  });
  assert.equal(confirmed.error, null);
  assert.ok(confirmed.data.user.email_confirmed_at);
  const magic = await admin.generateLink({ type: 'magiclink', email: address });
  const signedIn = await client().auth.verifyOtp({
    token_hash: magic.data.properties.hashed_token,
    type: 'magiclink',
  });
  assert.equal(signedIn.error, null);
  assert.equal(signedIn.data.user.email, address);
});

test('resend mails a new signup confirmation that verifies an unconfirmed user', async () => {
  const address = email('resend');
  const admin = client(SERVICE_ROLE_KEY).auth.admin;
  const created = await admin.createUser({ email: address, password: PASSWORD });
  assert.equal(created.error, null);
  assert.equal(created.data.user.email_confirmed_at, undefined);
  const unconfirmed = await client().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(unconfirmed.error.code, 'email_not_confirmed');

  const sent = await client().auth.resend({ type: 'signup', email: address, options: { emailRedirectTo: REDIRECT } });
  assert.equal(sent.error, null);
  const mail = await latestMail(address, 'signup');
  assert.match(mail.otp, /^\d{6}$/);
  const again = await client().auth.resend({ type: 'signup', email: address });
  assert.equal(again.error.code, 'over_email_send_rate_limit');
  assert.equal(again.error.status, 429);

  const { data, error } = await client().auth.verifyOtp({ email: address, token: mail.otp, type: 'signup' });
  assert.equal(error, null);
  assert.ok(data.user.email_confirmed_at);
  const login = await client().auth.signInWithPassword({ email: address, password: PASSWORD });
  assert.equal(login.error, null);
  const badType = await client().auth.resend({ type: 'recovery', email: address });
  assert.equal(badType.error.code, 'validation_failed');
});

test('verify is rate limited per IP: over_request_rate_limit (runs last in this file)', async () => {
  const supabase = client();
  const codes = [];
  for (let attempt = 0; attempt < 40; attempt += 1) {
    const { error } = await supabase.auth.verifyOtp({ email: 'brute@example.com', token: '123456', type: 'email' });
    codes.push(error.code);
    if (error.code === 'over_request_rate_limit') {
      assert.equal(error.status, 429);
      assert.equal(error.message, 'Request rate limit reached');
      break;
    }
  }
  assert.equal(codes.at(-1), 'over_request_rate_limit', codes.join(','));
  assert.ok(codes.slice(0, -1).every((code) => code === 'otp_expired'), codes.join(','));
});
