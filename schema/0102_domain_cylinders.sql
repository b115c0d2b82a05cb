-- Gas-cylinder domain, part 3: the product catalog, cylinders ("bottles") with their derived
-- current state, the allowed state transitions (reference rows, not code) and scan exceptions.

create table public.bottle_types (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  product_code text not null,
  description text,
  gas_type text,
  size text,
  container_class text not null default 'high_pressure'
    check (container_class in ('high_pressure', 'lpg', 'acetylene', 'cryogenic_liquid', 'low_pressure')),
  grade text not null default 'industrial' check (grade in ('industrial', 'medical', 'food', 'specialty')),
  rental_class_id uuid,
  replacement_cost numeric(12, 2) check (replacement_cost >= 0),
  requires_lot_release boolean not null default false,
  is_exchange boolean not null default false,
  default_spec text,
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (organization_id, product_code)
);

create table public.bottles (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  bottle_type_id uuid,
  -- The seed's columns.
  serial_number text not null,
  barcode_number text,
  product_code text,
  description text,
  size text,
  type text,
  gas_type text,
  status text not null default 'empty' check (status in (
    'empty', 'full', 'quarantine', 'on_truck', 'at_customer', 'maintenance', 'at_vendor',
    'lost', 'condemned', 'retired')),
  location text,
  customer_name text,
  rental_start_date date,
  rental_end_date date,
  last_inspection_date date,
  next_inspection_date date,
  purchase_date date,
  purchase_price numeric(12, 2) check (purchase_price >= 0),
  current_value numeric(12, 2) check (current_value >= 0),
  condition text,
  notes text,
  images text[] not null default '{}',
  -- Identity and regulatory facts.
  rfid_tag text,
  spec text,
  service_pressure numeric,
  pressure_unit text check (pressure_unit in ('psi', 'bar')),
  material text check (material in ('steel', 'aluminum', 'composite')),
  water_capacity_l numeric,
  tare_weight_kg numeric,
  manufacturer text,
  manufacture_date date,
  valve_outlet text,
  star_eligible boolean not null default false,
  end_of_life_date date,
  ownership text not null default 'company' check (ownership in ('company', 'customer', 'vendor', 'leased_in')),
  owner_customer_id uuid,
  -- Current state, written only by the event machinery.
  fill_state text not null default 'empty' check (fill_state in ('empty', 'full', 'partial', 'unknown')),
  current_location_id uuid,
  current_vehicle_id uuid,
  current_customer_id uuid,
  custody_since timestamptz,
  last_event_id uuid,
  last_event_at timestamptz,
  last_filled_at timestamptz,
  is_blocked boolean not null default false,
  blocked_reason text check (blocked_reason in ('recall', 'complaint', 'hold')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  created_by uuid default auth.uid(),
  deleted_at timestamptz,
  unique (organization_id, id),
  foreign key (organization_id, bottle_type_id) references public.bottle_types (organization_id, id),
  foreign key (organization_id, current_location_id) references public.locations (organization_id, id),
  foreign key (organization_id, current_vehicle_id) references public.vehicles (organization_id, id),
  check (next_inspection_date is null or last_inspection_date is null or next_inspection_date >= last_inspection_date),
  check (ownership <> 'customer' or owner_customer_id is not null),
  check (status <> 'at_customer' or current_customer_id is not null),
  check (status <> 'on_truck' or current_vehicle_id is not null),
  check (status not in ('empty', 'full', 'quarantine', 'maintenance', 'at_vendor') or current_location_id is not null)
);

create unique index bottles_barcode on public.bottles (organization_id, barcode_number)
  where deleted_at is null and barcode_number is not null;
create unique index bottles_rfid on public.bottles (organization_id, rfid_tag)
  where deleted_at is null and rfid_tag is not null;
create index bottles_serial on public.bottles (organization_id, serial_number);
create index bottles_status on public.bottles (organization_id, status) where deleted_at is null;
create index bottles_balance on public.bottles (organization_id, current_customer_id, bottle_type_id)
  where status = 'at_customer';
create index bottles_aging on public.bottles (organization_id, last_event_at) where status = 'at_customer';
create index bottles_requal on public.bottles (organization_id, next_inspection_date)
  where deleted_at is null and status not in ('retired', 'condemned');
create index bottles_on_truck on public.bottles (organization_id, current_vehicle_id) where status = 'on_truck';

create trigger bottle_types_org_fixed before update on public.bottle_types
  for each row execute function app.forbid_org_change();
create trigger bottle_types_touch before update on public.bottle_types
  for each row execute function app.touch_updated_at();
create trigger bottles_org_fixed before update on public.bottles
  for each row execute function app.forbid_org_change();
create trigger bottles_touch before update on public.bottles
  for each row execute function app.touch_updated_at();

-- product_code follows the type, kept for the seed's clients.
create function app.bottles_sync_type() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.bottle_type_id is not null then
    select t.product_code, coalesce(new.gas_type, t.gas_type), coalesce(new.size, t.size),
           coalesce(new.type, t.container_class), coalesce(new.description, t.description),
           coalesce(new.spec, t.default_spec)
      into new.product_code, new.gas_type, new.size, new.type, new.description, new.spec
      from public.bottle_types t
      where t.organization_id = new.organization_id and t.id = new.bottle_type_id;
  end if;
  return new;
end
$$;
create trigger bottles_sync_type before insert or update of bottle_type_id on public.bottles
  for each row execute function app.bottles_sync_type();

-- Cylinder limits: one statement-level check per insert, so a 10k-row import takes one lock.
create function app.bottles_limit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  org_row record;
begin
  for org_row in
    select organization_id, count(*) as n from new_rows
    where deleted_at is null and status <> 'retired' group by organization_id
  loop
    perform app.enforce_limit(org_row.organization_id, 'max_cylinders', org_row.n::int);
  end loop;
  return null;
end
$$;
create trigger bottles_limit after insert on public.bottles
  referencing new table as new_rows for each statement execute function app.bottles_limit();

-- A restored (or un-retired) cylinder counts again.
create function app.bottles_limit_on_restore() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if (old.deleted_at is not null and new.deleted_at is null)
     or (old.status = 'retired' and new.status <> 'retired') then
    perform app.enforce_limit(new.organization_id, 'max_cylinders', 1);
  end if;
  return null;
end
$$;
create trigger bottles_limit_restore after update of deleted_at, status on public.bottles
  for each row execute function app.bottles_limit_on_restore();

-- The state machine as data: which event may move a cylinder from which status to which.
create table public.bottle_status_transitions (
  event_type text not null,
  from_status text,
  to_status text not null,
  unique nulls not distinct (event_type, from_status, to_status)
);

insert into public.bottle_status_transitions (event_type, from_status, to_status) values
  ('register', null, 'empty'), ('register', null, 'full'), ('register', null, 'at_customer'),
  ('fill', 'empty', 'full'), ('fill', 'empty', 'quarantine'),
  ('release', 'quarantine', 'full'), ('reject_lot', 'quarantine', 'empty'),
  ('load', 'full', 'on_truck'), ('load', 'empty', 'on_truck'),
  ('unload', 'on_truck', 'full'), ('unload', 'on_truck', 'empty'),
  ('deliver', 'on_truck', 'at_customer'), ('deliver', 'full', 'at_customer'),
  ('return', 'at_customer', 'on_truck'), ('return', 'at_customer', 'empty'), ('return', 'at_customer', 'full'),
  ('transfer_customer', 'at_customer', 'at_customer'),
  ('transfer_location', 'empty', 'empty'), ('transfer_location', 'full', 'full'),
  ('transfer_location', 'maintenance', 'maintenance'),
  ('mark_lost', 'at_customer', 'lost'), ('mark_lost', 'on_truck', 'lost'),
  ('mark_lost', 'empty', 'lost'), ('mark_lost', 'full', 'lost'),
  ('found', 'lost', 'at_customer'), ('found', 'lost', 'empty'), ('found', 'lost', 'full'),
  ('to_maintenance', 'empty', 'maintenance'), ('to_maintenance', 'full', 'maintenance'),
  ('to_maintenance', 'condemned', 'maintenance'), ('from_maintenance', 'maintenance', 'empty'),
  ('send_vendor', 'empty', 'at_vendor'), ('send_vendor', 'maintenance', 'at_vendor'),
  ('receive_vendor', 'at_vendor', 'empty'), ('receive_vendor', 'at_vendor', 'full'),
  ('inspect_pass', 'maintenance', 'empty'), ('inspect_pass', 'at_vendor', 'empty'), ('inspect_pass', 'empty', 'empty'),
  ('condemn', 'empty', 'condemned'), ('condemn', 'full', 'condemned'), ('condemn', 'quarantine', 'condemned'),
  ('condemn', 'on_truck', 'condemned'), ('condemn', 'at_customer', 'condemned'),
  ('condemn', 'maintenance', 'condemned'), ('condemn', 'at_vendor', 'condemned'),
  ('retire', 'condemned', 'retired'), ('retire', 'empty', 'retired'), ('retire', 'full', 'retired'),
    ('retire', 'lost', 'retired');

-- Events that keep the status: a sighting (any active cylinder), an ownership change and a block
-- or unblock (any cylinder still in the fleet).
insert into public.bottle_status_transitions (event_type, from_status, to_status)
select e.event_type, s.status, s.status
from unnest(array['locate', 'audit_seen', 'change_ownership', 'block', 'unblock']) as e(event_type)
cross join unnest(array['empty', 'full', 'quarantine', 'on_truck', 'at_customer', 'maintenance',
                        'at_vendor', 'lost', 'condemned']) as s(status)
where not (e.event_type in ('locate', 'audit_seen') and s.status in ('lost', 'condemned'));

create table public.scan_exceptions (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  raw_code text,
  scan_method text,
  event_id uuid,
  event_payload jsonb,
  reason text not null check (reason in (
    'unknown_code', 'duplicate_match', 'invalid_transition', 'blocked', 'out_of_test', 'wrong_org',
        'late_event', 'transfer', 'invalid_scan')),
  message text,
  status text not null default 'open' check (status in ('open', 'resolved', 'ignored')),
  actor_user_id uuid default auth.uid(),
  resolved_by uuid,
  resolved_at timestamptz,
  created_at timestamptz not null default now(),
  unique (organization_id, id)
);
create index scan_exceptions_open on public.scan_exceptions (organization_id, status, created_at);
-- One exception per offending event: a device retrying the same scan does not pile them up.
create unique index scan_exceptions_event on public.scan_exceptions (organization_id, event_id)
  where event_id is not null;
create trigger scan_exceptions_org_fixed before update on public.scan_exceptions
  for each row execute function app.forbid_org_change();
