-- Gas-cylinder domain, part 2: invitations, locations and vehicles. Every tenant table carries
-- organization_id (defaulting to the caller's organization) and unique (organization_id, id) so
-- children can use composite foreign keys: RLS does not apply to FK checks, so only a composite
-- key stops a row from pointing at another tenant's data.

create table public.org_invitations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  email extensions.citext not null,
  role text not null check (role in ('admin', 'manager', 'driver', 'plant', 'viewer')),
  token_hash text not null,
  invited_by uuid references auth.users (id) on delete set null,
  expires_at timestamptz not null default (now() + interval '7 days'),
  accepted_at timestamptz,
  created_at timestamptz not null default now(),
  unique (organization_id, id)
);
create unique index org_invitations_pending on public.org_invitations (organization_id, email)
  where accepted_at is null;

create table public.locations (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  kind text not null check (kind in ('branch', 'fill_plant', 'warehouse', 'vendor', 'retester')),
  name text not null,
  address text,
  lat double precision,
  lng double precision,
  retester_rin text,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (organization_id, id)
);
create unique index locations_name on public.locations (organization_id, name) where deleted_at is null;

create table public.vehicles (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  unit_number text not null,
  plate text,
  capacity_cylinders int check (capacity_cylinders > 0),
  home_location_id uuid,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (organization_id, id),
  foreign key (organization_id, home_location_id) references public.locations (organization_id, id)
);
create unique index vehicles_unit on public.vehicles (organization_id, unit_number) where deleted_at is null;

alter table public.profiles
  add foreign key (organization_id, home_location_id) references public.locations (organization_id, id),
  add foreign key (organization_id, default_vehicle_id) references public.vehicles (organization_id, id);

create trigger org_invitations_org_fixed before update on public.org_invitations
  for each row execute function app.forbid_org_change();
create trigger locations_org_fixed before update on public.locations
  for each row execute function app.forbid_org_change();
create trigger locations_touch before update on public.locations
  for each row execute function app.touch_updated_at();
create trigger vehicles_org_fixed before update on public.vehicles
  for each row execute function app.forbid_org_change();
create trigger vehicles_touch before update on public.vehicles
  for each row execute function app.touch_updated_at();

-- Pending invitations count toward max_users.
create function app.invitations_limit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  org_row record;
begin
  for org_row in select organization_id, count(*) as n from new_rows group by organization_id loop
    perform app.enforce_limit(org_row.organization_id, 'max_users', org_row.n::int);
  end loop;
  return null;
end
$$;
create trigger org_invitations_limit after insert on public.org_invitations
  referencing new table as new_rows for each statement execute function app.invitations_limit();

-- At least one active owner per organization.
create function app.keep_an_owner() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if old.role = 'owner' and old.is_active and (new.role <> 'owner' or not new.is_active)
     and not exists (
       select 1 from public.profiles p
       where p.organization_id = old.organization_id and p.role = 'owner' and p.is_active and p.id <> old.id
     ) then
    raise exception 'an organization needs an active owner' using errcode = 'P0001';
  end if;
  return new;
end
$$;
create trigger profiles_keep_owner before update on public.profiles
  for each row execute function app.keep_an_owner();
