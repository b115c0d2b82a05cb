-- Gas-cylinder domain, part 5: routes (a driver's day), deliveries (one stop each, with proof of
-- delivery as Storage object paths, never image data) and their order lines.

create table public.routes (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  route_date date not null,
  name text not null,
  driver_id uuid,
  vehicle_id uuid,
  start_location_id uuid,
  status text not null default 'planned' check (status in ('planned', 'in_progress', 'completed', 'cancelled')),
  started_at timestamptz,
  ended_at timestamptz,
  notes text,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (organization_id, id),
  -- The driver is a member of the same organization (profiles.user_id).
  foreign key (organization_id, driver_id) references public.profiles (organization_id, user_id),
  foreign key (organization_id, vehicle_id) references public.vehicles (organization_id, id),
  foreign key (organization_id, start_location_id) references public.locations (organization_id, id),
  check (ended_at is null or started_at is null or ended_at >= started_at)
);
create unique index routes_name on public.routes (organization_id, route_date, name) where deleted_at is null;
create index routes_driver on public.routes (organization_id, driver_id, route_date);

create table public.deliveries (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  -- The seed's columns.
  customer_id uuid not null,
  delivery_date date not null default current_date,
  delivery_address text,
  contact_person text,
  contact_phone text,
  status text not null default 'scheduled' check (status in (
    'scheduled', 'assigned', 'en_route', 'arrived', 'completed', 'partial', 'failed', 'cancelled')),
  driver_id uuid,
  vehicle_id uuid,
  route_id uuid,
  delivery_notes text,
  signature text,
  photos text[] not null default '{}',
  delivery_time timestamptz,
  -- Planning.
  delivery_number text,
  kind text not null default 'delivery' check (kind in ('delivery', 'pickup', 'exchange', 'will_call')),
  stop_sequence int check (stop_sequence >= 0),
  window_start timestamptz,
  window_end timestamptz,
  -- Proof of delivery.
  signed_by_name text,
  pod_lat double precision check (pod_lat between -90 and 90),
  pod_lng double precision check (pod_lng between -180 and 180),
  pod_accuracy_m double precision check (pod_accuracy_m >= 0),
  completed_at timestamptz,
  signature_waived_reason text,
  failure_reason text,
  delivered_count int check (delivered_count >= 0),
  returned_count int check (returned_count >= 0),
  qb_txn_id text,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (organization_id, id),
  foreign key (organization_id, customer_id) references public.customers (organization_id, id),
  foreign key (organization_id, driver_id) references public.profiles (organization_id, user_id),
  foreign key (organization_id, vehicle_id) references public.vehicles (organization_id, id),
  foreign key (organization_id, route_id) references public.routes (organization_id, id),
  check (status not in ('completed', 'partial')
         or (completed_at is not null and (signature is not null or signature_waived_reason is not null))),
  check (cardinality(photos) <= 10),
  check (window_end is null or window_start is null or window_end >= window_start)
);
create unique index deliveries_number on public.deliveries (organization_id, delivery_number)
  where delivery_number is not null and deleted_at is null;
create index deliveries_board on public.deliveries (organization_id, delivery_date, status);
create index deliveries_driver on public.deliveries (organization_id, driver_id, delivery_date);
create index deliveries_route on public.deliveries (organization_id, route_id, stop_sequence);
create index deliveries_customer on public.deliveries (organization_id, customer_id, delivery_date desc);

create table public.delivery_items (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  delivery_id uuid not null,
  bottle_type_id uuid not null,
  qty_ordered int not null default 0 check (qty_ordered >= 0),
  qty_delivered int not null default 0 check (qty_delivered >= 0),
  qty_returned int not null default 0 check (qty_returned >= 0),
  unit_price numeric(12, 2) check (unit_price >= 0),
  notes text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, id),
  unique (delivery_id, bottle_type_id),
  foreign key (organization_id, delivery_id) references public.deliveries (organization_id, id) on delete cascade,
  foreign key (organization_id, bottle_type_id) references public.bottle_types (organization_id, id)
);
create index delivery_items_delivery on public.delivery_items (organization_id, delivery_id);

create trigger routes_org_fixed before update on public.routes
  for each row execute function app.forbid_org_change();
create trigger routes_touch before update on public.routes
  for each row execute function app.touch_updated_at();
create trigger deliveries_org_fixed before update on public.deliveries
  for each row execute function app.forbid_org_change();
create trigger deliveries_touch before update on public.deliveries
  for each row execute function app.touch_updated_at();
create trigger delivery_items_org_fixed before update on public.delivery_items
  for each row execute function app.forbid_org_change();
create trigger delivery_items_touch before update on public.delivery_items
  for each row execute function app.touch_updated_at();

-- The seed's client sends `pending` (a stop nobody has started) and `delivered` (DOMAIN.md
-- §3.6: a completed stop, which still needs its proof: a signature or a waiver reason).
create function app.deliveries_status_alias() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status = 'pending' then
    new.status := 'scheduled';
  elsif new.status = 'delivered' then
    new.status := 'completed';
    new.completed_at := coalesce(new.completed_at, now());
  end if;
  return new;
end
$$;
create trigger deliveries_status_alias before insert or update of status on public.deliveries
  for each row execute function app.deliveries_status_alias();

-- A stop on a route inherits the route's driver and vehicle unless set.
create function app.deliveries_from_route() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.route_id is not null and (tg_op = 'INSERT' or new.route_id is distinct from old.route_id) then
    select coalesce(new.driver_id, r.driver_id), coalesce(new.vehicle_id, r.vehicle_id)
      into new.driver_id, new.vehicle_id
      from public.routes r where r.organization_id = new.organization_id and r.id = new.route_id;
  end if;
  return new;
end
$$;
create trigger deliveries_from_route before insert or update of route_id on public.deliveries
  for each row execute function app.deliveries_from_route();
