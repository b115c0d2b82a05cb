// supabase-js MFA with TOTP: enroll, challenge, verify with a code computed here, aal2, unenroll.
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { client } from './env.mjs';

const PASSWORD = 'correct-horse-1';

function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(char).toString(2).padStart(5, '0');
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** RFC 6238 TOTP (SHA-1, 6 digits, 30 s steps). */
function totp(secret, time = Date.now()) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 1000 / 30)));
  const digest = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const value = (digest.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return value.toString().padStart(6, '0');
}

async function signedIn(label) {
  const supabase = client();
  const email = `${label}-${randomUUID().slice(0, 8)}@example.com`;
  const { error } = await supabase.auth.signUp({ email, password: PASSWORD });
  assert.equal(error, null);
  return { supabase, email };
}

test('mfa enroll, challenge and verify with a TOTP code upgrade the session to aal2', async () => {
  const { supabase, email } = await signedIn('mfa');
  const enrolled = await supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'phone' });
  assert.equal(enrolled.error, null);
  const factor = enrolled.data;
  assert.equal(factor.type, 'totp');
  assert.equal(factor.friendly_name, 'phone');
  assert.match(factor.totp.secret, /^[A-Z2-7]+=*$/);
  assert.ok(factor.totp.uri.startsWith('otpauth://totp/'), factor.totp.uri);
  assert.ok(factor.totp.qr_code.startsWith('data:image/svg+xml;utf-8,<svg'), factor.totp.qr_code.slice(0, 40));
  const duplicate = await supabase.auth.mfa.enroll({ factorType: 'totp', friendlyName: 'phone' });
  assert.equal(duplicate.error.code, 'mfa_factor_name_conflict');

  const first = await supabase.auth.mfa.challenge({ factorId: factor.id });
  assert.equal(first.error, null);
  assert.ok(first.data.expires_at > Date.now() / 1000);
  const wrongCode = totp(factor.totp.secret, Date.now() - 10 * 60_000);
  const wrong = await supabase.auth.mfa.verify({ factorId: factor.id, challengeId: first.data.id, code: wrongCode });
  assert.equal(wrong.error.code, 'mfa_verification_failed');

  const second = await supabase.auth.mfa.challenge({ factorId: factor.id });
  const verified = await supabase.auth.mfa.verify({
    factorId: factor.id,
    challengeId: second.data.id,
    code: totp(factor.totp.secret),
  });
  assert.equal(verified.error, null);
  const aal = await supabase.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.equal(aal.data.currentLevel, 'aal2');
  assert.equal(aal.data.nextLevel, 'aal2');
  const { data: claims } = await supabase.auth.getClaims();
  assert.equal(claims.claims.aal, 'aal2');
  assert.ok(claims.claims.amr.some((entry) => entry.method === 'totp'));
  // A used challenge cannot be replayed.
  const replay = await supabase.auth.mfa.verify({
    factorId: factor.id,
    challengeId: second.data.id,
    code: totp(factor.totp.secret),
  });
  assert.equal(replay.error.code, 'mfa_challenge_expired');

  const listed = await supabase.auth.mfa.listFactors();
  assert.equal(listed.data.totp.length, 1);
  assert.equal(listed.data.totp[0].status, 'verified');

  // A fresh aal1 sign-in of the same user: aal2 is next, and the password cannot change yet.
  const other = client();
  await other.auth.signInWithPassword({ email, password: PASSWORD });
  const otherAal = await other.auth.mfa.getAuthenticatorAssuranceLevel();
  assert.deepEqual([otherAal.data.currentLevel, otherAal.data.nextLevel], ['aal1', 'aal2']);
  const blocked = await other.auth.updateUser({ password: 'another-pass-2' });
  assert.equal(blocked.error.code, 'insufficient_aal');
  const notFromAal1 = await other.auth.mfa.unenroll({ factorId: factor.id });
  assert.equal(notFromAal1.error.code, 'insufficient_aal');

  const removed = await supabase.auth.mfa.unenroll({ factorId: factor.id });
  assert.equal(removed.error, null);
  assert.equal(removed.data.id, factor.id);
  assert.equal((await supabase.auth.mfa.listFactors()).data.all.length, 0);
});

test('challenge of an unknown factor and MFA for anonymous users are refused', async () => {
  const { supabase } = await signedIn('mfa-unknown');
  const missing = await supabase.auth.mfa.challenge({ factorId: randomUUID() });
  assert.equal(missing.error.code, 'mfa_factor_not_found');
  const anonymous = client();
  await anonymous.auth.signInAnonymously();
  const refused = await anonymous.auth.mfa.enroll({ factorType: 'totp' });
  assert.equal(refused.error.status, 403);
});
