-- Gas-cylinder domain, part 1: the private `app` schema with the helpers every policy and RPC
-- uses, and the generic triggers of tenant tables. Tenant isolation is declared in RLS (see
-- policies/); these helpers only tell policies who the caller is.

create extension if not exists btree_gist with schema extensions;
create extension if not exists pg_trgm with schema extensions;
create extension if not exists citext with schema extensions;

create schema if not exists app;
revoke all on schema app from public;
grant usage on schema app to authenticated, service_role;

-- The organizations table is created here (the tenant root) because the helpers below read
-- profiles, which reference it.
create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) > 0),
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$'),
  subscription_status text not null default 'trialing'
    check (subscription_status in ('trialing', 'active', 'past_due', 'canceled', 'suspended')),
  trial_ends_at timestamptz default (now() + interval '30 days'),
  past_due_grace_until timestamptz,
  plan text,
  max_users int check (max_users > 0),
  max_cylinders int check (max_cylinders > 0),
  max_customers int check (max_customers > 0),
  timezone text not null default 'UTC',
  currency char(3) not null default 'USD',
  regulatory_regime text not null default 'US_DOT'
    check (regulatory_regime in ('US_DOT', 'TC_CA', 'ADR_EU', 'OTHER')),
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);

create table public.profiles (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null unique references auth.users (id) on delete cascade,
  organization_id uuid not null references public.organizations (id),
  full_name text,
  role text not null check (role in ('owner', 'admin', 'manager', 'driver', 'plant', 'viewer')),
  is_active boolean not null default true,
  phone text,
  home_location_id uuid,
  default_vehicle_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (organization_id, user_id)
);
create index profiles_org_role on public.profiles (organization_id, role);

-- Who is calling: the active profile of auth.uid(). SECURITY DEFINER so the lookup itself is not
-- subject to the profiles policies (which call it).
create function app.current_org_id() returns uuid
language sql stable security definer set search_path = ''
as $$
  select p.organization_id from public.profiles p
  where p.user_id = auth.uid() and p.is_active
$$;

create function app.current_role() returns text
language sql stable security definer set search_path = ''
as $$
  select p.role from public.profiles p
  where p.user_id = auth.uid() and p.is_active
$$;

create function app.has_role(variadic roles text[]) returns boolean
language sql stable security definer set search_path = ''
as $$
  select coalesce(app.current_role() = any (roles), false)
$$;

-- Writes are allowed while the subscription is usable; reads always are.
create function app.org_can_write() returns boolean
language sql stable security definer set search_path = ''
as $$
  select coalesce((
    select case o.subscription_status
      when 'active' then true
      when 'trialing' then o.trial_ends_at is null or o.trial_ends_at > now()
      when 'past_due' then o.past_due_grace_until is not null and o.past_due_grace_until > now()
      else false
    end
    from public.organizations o
    where o.id = app.current_org_id() and o.deleted_at is null
  ), false)
$$;

-- Raised by RPCs when the caller may not do something; 42501 maps to 401/403 over HTTP.
create function app.require_role(variadic roles text[]) returns uuid
language plpgsql stable security definer set search_path = ''
as $$
declare
  org uuid := app.current_org_id();
begin
  if org is null then
    raise exception 'not a member of an organization' using errcode = '42501';
  end if;
  if not (app.current_role() = any (roles)) then
    raise exception 'role % may not do this', app.current_role() using errcode = '42501';
  end if;
  return org;
end
$$;

-- Signed-in users run only the helpers their policies and column defaults call; everything
-- else in `app` is for the RPCs and triggers (see the end of 0108).
revoke all on all functions in schema app from public, anon;
grant execute on function app.current_org_id(), app.current_role(), app.has_role(text[]), app.org_can_write()
  to authenticated;
grant execute on all functions in schema app to service_role;

-- Generic triggers ------------------------------------------------------------------------------

create function app.touch_updated_at() returns trigger
language plpgsql set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- Rows never move between tenants.
create function app.forbid_org_change() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.organization_id is distinct from old.organization_id then
    raise exception 'organization_id cannot change' using errcode = '42501';
  end if;
  return new;
end
$$;

-- Plan limits: one lock on the organization row serialises concurrent inserts of one tenant,
-- then the current count is compared with the limit (null means unlimited). The lock is FOR NO
-- KEY UPDATE, not FOR UPDATE: the inserted rows' foreign keys already hold FOR KEY SHARE on that
-- row, which FOR UPDATE would wait for, so two racing inserts would deadlock instead of one
-- waiting for the other and then counting its rows.
create function app.enforce_limit(p_org uuid, p_kind text, p_new int) returns void
language plpgsql security definer set search_path = ''
as $$
declare
  lim int;
  current_count bigint;
begin
  if p_new <= 0 then
    return;
  end if;
  select case p_kind
           when 'max_cylinders' then o.max_cylinders
           when 'max_customers' then o.max_customers
           when 'max_users' then o.max_users
         end
    into lim
    from public.organizations o where o.id = p_org for no key update;
  if lim is null then
    return;
  end if;
  if p_kind = 'max_cylinders' then
    select count(*) into current_count from public.bottles b
    where b.organization_id = p_org and b.deleted_at is null and b.status <> 'retired';
  elsif p_kind = 'max_customers' then
    select count(*) into current_count from public.customers c
    where c.organization_id = p_org and c.deleted_at is null and c.status <> 'inactive';
  else
    select (select count(*) from public.profiles p where p.organization_id = p_org and p.is_active)
         + (select count(*) from public.org_invitations i
            where i.organization_id = p_org and i.accepted_at is null and i.expires_at > now())
      into current_count;
  end if;
  -- The rows being inserted are already visible to an AFTER trigger, hence the subtraction.
  if current_count > lim then
    raise exception 'plan_limit_exceeded:%', p_kind
      using errcode = 'P0001',
            detail = json_build_object('limit', lim, 'current', current_count - p_new)::text,
            hint = 'Upgrade the plan or remove records';
  end if;
end
$$;

create trigger organizations_touch before update on public.organizations
  for each row execute function app.touch_updated_at();
create trigger profiles_touch before update on public.profiles
  for each row execute function app.touch_updated_at();
create trigger profiles_org_fixed before update on public.profiles
  for each row execute function app.forbid_org_change();

-- Plan columns change only through the service role (the billing webhook).
create function app.protect_plan_columns() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if coalesce(auth.role(), '') <> 'service_role' and current_user not in ('postgres', 'service_role') and (
       new.subscription_status is distinct from old.subscription_status
    or new.trial_ends_at is distinct from old.trial_ends_at
    or new.past_due_grace_until is distinct from old.past_due_grace_until
    or new.plan is distinct from old.plan
    or new.max_users is distinct from old.max_users
    or new.max_cylinders is distinct from old.max_cylinders
    or new.max_customers is distinct from old.max_customers) then
    raise exception 'plan fields are managed by billing' using errcode = '42501';
  end if;
  return new;
end
$$;
create trigger organizations_plan_guard before update on public.organizations
  for each row execute function app.protect_plan_columns();
