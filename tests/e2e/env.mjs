// Connection facts exported by run.sh, and small helpers shared by the suites.
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
