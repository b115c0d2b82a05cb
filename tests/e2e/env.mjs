// Connection facts exported by run.sh, and small helpers shared by the suites.
import { createHmac } from 'node:crypto';

import { createClient } from '@supabase/supabase-js';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the suite through tests/run.sh`);
  return value;
}

export const API_URL = required('API_URL');
export const ANON_KEY = required('ANON_KEY');
export const SERVICE_ROLE_KEY = required('SERVICE_ROLE_KEY');
export const PUBLISHABLE_KEY = required('PUBLISHABLE_KEY');
export const SECRET_KEY = required('SECRET_KEY');
export const JWT_SECRET = required('JWT_SECRET');

/** A supabase-js client that keeps no session between tests. */
export function client(key = ANON_KEY, options = {}) {
  return createClient(API_URL, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    ...options,
  });
}

/** An HS256 JWT signed with the project secret, as GoTrue would issue for a user. */
export function signJwt(claims) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const body = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode({ iat: now, exp: now + 3600, ...claims })}`;
  const signature = createHmac('sha256', JWT_SECRET).update(body).digest('base64url');
  return `${body}.${signature}`;
}

/** A client acting as the user `sub` (role authenticated). */
export function userClient(sub, extraClaims = {}) {
  const token = signJwt({ sub, role: 'authenticated', aud: 'authenticated', ...extraClaims });
  return client(ANON_KEY, { global: { headers: { Authorization: `Bearer ${token}` } } });
}
