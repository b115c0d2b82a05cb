-- SQL the /auth/v1 API calls: the User JSON of GoTrue (built in the database so one round trip
-- returns it) and the custom-access-token hook dispatcher. Owned by supabase_auth_admin and not
-- executable by the API roles.
set local role supabase_auth_admin;

-- GoTrue's timestamps: RFC 3339 in UTC with microseconds.
create function auth.manifold_time(ts timestamptz) returns text
language sql immutable
as $$
  select to_char(ts at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- The identity object of GoTrue's user JSON.
create function auth.manifold_identity_json(i auth.identities) returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'identity_id', i.id,
    'id', i.provider_id,
    'user_id', i.user_id,
    'identity_data', coalesce(i.identity_data, '{}'::jsonb),
    'provider', i.provider,
    'last_sign_in_at', auth.manifold_time(i.last_sign_in_at),
    'created_at', auth.manifold_time(i.created_at),
    'updated_at', auth.manifold_time(i.updated_at),
    'email', i.email
  )
$$;

-- The factor object of GoTrue's user JSON (and of the admin factor list).
create function auth.manifold_factor_json(f auth.mfa_factors) returns jsonb
language sql stable
as $$
  select jsonb_build_object(
    'id', f.id,
    'friendly_name', coalesce(f.friendly_name, ''),
    'factor_type', f.factor_type,
    'status', f.status,
    'created_at', auth.manifold_time(f.created_at),
    'updated_at', auth.manifold_time(f.updated_at),
    'phone', coalesce(f.phone, ''),
    'last_challenged_at', auth.manifold_time(f.last_challenged_at)
  )
$$;

-- GoTrue's User JSON: optional fields are left out when null (only at the top level: metadata
-- keeps its nulls), `identities` is always present, `factors` only when there are some.
create function auth.manifold_user_json(u auth.users) returns jsonb
language sql stable
as $$
  with full_user as (
    select jsonb_build_object(
      'id', u.id,
      'aud', coalesce(u.aud, ''),
      'role', coalesce(u.role, ''),
      'email', coalesce(u.email, ''),
      'email_confirmed_at', auth.manifold_time(u.email_confirmed_at),
      'phone', coalesce(u.phone, ''),
      'phone_confirmed_at', auth.manifold_time(u.phone_confirmed_at),
      'confirmation_sent_at', auth.manifold_time(u.confirmation_sent_at),
      'confirmed_at', auth.manifold_time(u.confirmed_at),
      'recovery_sent_at', auth.manifold_time(u.recovery_sent_at),
      'new_email', nullif(u.email_change, ''),
      'email_change_sent_at', auth.manifold_time(u.email_change_sent_at),
      'new_phone', nullif(u.phone_change, ''),
      'phone_change_sent_at', auth.manifold_time(u.phone_change_sent_at),
      'reauthentication_sent_at', auth.manifold_time(u.reauthentication_sent_at),
      'invited_at', auth.manifold_time(u.invited_at),
      'last_sign_in_at', auth.manifold_time(u.last_sign_in_at),
      'app_metadata', coalesce(u.raw_app_meta_data, '{}'::jsonb),
      'user_metadata', coalesce(u.raw_user_meta_data, '{}'::jsonb),
      'identities', coalesce(
        (select jsonb_agg(auth.manifold_identity_json(i) order by i.created_at, i.id)
           from auth.identities i where i.user_id = u.id),
        '[]'::jsonb),
      'factors', (select jsonb_agg(auth.manifold_factor_json(f) order by f.created_at, f.id)
                    from auth.mfa_factors f where f.user_id = u.id),
      'created_at', auth.manifold_time(u.created_at),
      'updated_at', auth.manifold_time(u.updated_at),
      'banned_until', auth.manifold_time(u.banned_until),
      'deleted_at', auth.manifold_time(u.deleted_at),
      'is_anonymous', u.is_anonymous
    ) as body
  )
  select jsonb_object_agg(e.key, e.value)
    from full_user, jsonb_each(full_user.body) as e
   where e.value <> 'null'::jsonb
$$;

-- Runs the configured custom-access-token hook, as Supabase's `pg-functions://` hooks: the
-- function takes the event as jsonb and returns jsonb. The name arrives as a bound value and is
-- resolved through regprocedure, so only an existing function taking one jsonb can be called.
create function auth.manifold_run_hook(function_name text, event jsonb) returns jsonb
language plpgsql volatile
as $$
declare
  target regprocedure := (function_name || '(jsonb)')::regprocedure;
  result jsonb;
begin
  execute format('select %s($1)', target::oid::regproc) into result using event;
  return result;
end
$$;

revoke all on function auth.manifold_time(timestamptz) from public;
revoke all on function auth.manifold_identity_json(auth.identities) from public;
revoke all on function auth.manifold_factor_json(auth.mfa_factors) from public;
revoke all on function auth.manifold_user_json(auth.users) from public;
revoke all on function auth.manifold_run_hook(text, jsonb) from public;

reset role;
