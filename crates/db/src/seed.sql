-- `manifold seed`: demo and benchmark data for the gas-cylinder domain, generated set-based inside
-- PostgreSQL in one transaction. Created as a temporary function per run (nothing is left in the
-- schema) and called with one jsonb argument:
--   organizations, bottles_per_org, customers_per_org, drivers_per_org, turns, history_days,
--   slug, password.
-- Each organization gets a user per role (owner, admin, manager, plant, viewer, drivers), depots,
-- trucks, cylinder types, customers with billing rows, and cylinders with a history of `turns`
-- complete rounds (fill -> load -> deliver -> return -> unload) plus a partial last round, so
-- cylinders end up empty or full at a depot, on a truck for today's route, or at a customer.
-- The history is written as the event engine would have written it (statuses, custody periods,
-- deliveries with proof, routes, delivery items) and checked by replaying sample cylinders in
-- the tests. The bulk tables are written with triggers off (session_replication_role = replica):
-- the generator produces exactly the rows the triggers would, much faster.
create or replace function pg_temp.manifold_seed_hash(x bigint) returns bigint
language sql immutable parallel safe
as $$ select hashint8(x)::bigint & 2147483647 $$;

create or replace function pg_temp.manifold_seed_id(org uuid, kind text, key text) returns uuid
language sql immutable parallel safe
as $$ select md5(org::text || ':' || kind || ':' || key)::uuid $$;

-- Ids of the bulk rows (cylinders, events): a per-organization prefix and a counter, so their
-- indexes fill in order instead of at random pages.
create or replace function pg_temp.manifold_seed_seq_id(org uuid, kind text, n bigint) returns uuid
language sql immutable parallel safe
as $$ select (left(md5(org::text || ':' || kind), 16) || lpad(to_hex(n), 16, '0'))::uuid $$;

-- The customer's delivery weekday (Mon-Fri) on or after `d`.
create or replace function pg_temp.manifold_seed_snap(d date, customer int) returns date
language sql immutable parallel safe
as $$
  select d + ((1 + (pg_temp.manifold_seed_hash(customer) % 5))::int - extract(dow from d)::int + 7) % 7
$$;

create or replace function pg_temp.manifold_seed(p jsonb) returns jsonb
language plpgsql
set search_path = public, extensions
as $fn$
declare
  v_orgs int := coalesce((p ->> 'organizations')::int, 1);
  v_bottles int := coalesce((p ->> 'bottles_per_org')::int, 5000);
  v_customers int := coalesce((p ->> 'customers_per_org')::int, 200);
  v_drivers int := coalesce((p ->> 'drivers_per_org')::int, 4);
  v_turns int := coalesce((p ->> 'turns')::int, 3);
  v_days int := coalesce((p ->> 'history_days')::int, 180);
  v_prefix text := coalesce(p ->> 'slug', 'demo-gas');
  v_span int;
  v_base date;
  v_pw text;
  v_org uuid;
  v_slug text;
  v_depot uuid;
  v_plant uuid;
  v_plant_user uuid;
  v_def text;
  v_started timestamptz := clock_timestamp();
  v_orgs_out jsonb := '[]'::jsonb;
  v_rows bigint;
  v_events bigint := 0;
  v_bottles_total bigint := 0;
  v_deliveries bigint := 0;
begin
  if v_orgs < 1 or v_bottles < 1 or v_customers < 1 or v_drivers < 1 or v_turns not between 1 and 7 then
    raise exception 'organizations, bottles, customers and drivers must be at least 1, rounds 1 to 7'
      using errcode = '22023';
  end if;
  v_span := v_days / (v_turns + 1);
  if v_span < 18 then
    raise exception 'history_days must give each round at least 18 days (%/% rounds = % days)',
      v_days, v_turns + 1, v_span using errcode = '22023';
  end if;
  if coalesce(p ->> 'password', '') = '' then
    raise exception 'a password for the seeded users is required' using errcode = '22023';
  end if;
  v_pw := crypt(p ->> 'password', gen_salt('bf', 10));
  -- Bulk mode (benchmark scale into a fresh database): the secondary indexes of the bulk tables
  -- are dropped while the rows go in and built once at the end, which is several times faster
  -- than maintaining them row by row. (The custody exclusion constraint stays: rebuilding its
  -- GiST index costs more than checking it per row.) It takes exclusive locks on those tables
  -- for the duration of the seed.
  create temp table seed_deferred (name text, def text) on commit drop;
  set local maintenance_work_mem = '512MB';
  if coalesce((p ->> 'bulk')::boolean, false) then
    insert into seed_deferred
    select quote_ident(n.nspname) || '.' || quote_ident(c.relname), pg_get_indexdef(i.indexrelid)
    from pg_index i
    join pg_class c on c.oid = i.indexrelid
    join pg_namespace n on n.oid = c.relnamespace
    where i.indrelid in ('public.bottles'::regclass, 'public.bottle_events'::regclass,
                         'public.rentals'::regclass, 'public.deliveries'::regclass,
                         'public.delivery_items'::regclass, 'public.routes'::regclass)
      and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid);
    for v_def in select d.name from seed_deferred d loop
      execute 'drop index ' || v_def;
    end loop;
  end if;
  -- Day 0 of every cylinder's history; the partial last round ends before today.
  v_base := current_date - v_days;

  for o in 1 .. v_orgs loop
    v_slug := case when v_orgs = 1 then v_prefix else v_prefix || '-' || o end;
    if exists (select 1 from organizations x where x.slug = v_slug) then
      raise exception 'organization "%" already exists: the data was seeded before', v_slug
        using errcode = '23505', hint = 'seed into a fresh database, or pass another --slug';
    end if;
    v_org := gen_random_uuid();

    -- Reference data, with every trigger on (audit rows, limits, derived columns).
    insert into organizations (id, name, slug, subscription_status, trial_ends_at, plan, timezone, settings)
    values (v_org, initcap(replace(v_slug, '-', ' ')), v_slug, 'active', null, 'demo', 'UTC',
            '{"billing_mode": "periodic"}');

    create temp table seed_people on commit drop as
    select r.role, r.n, r.role || case when r.role = 'driver' then r.n::text else '' end
             || '@' || v_slug || '.test' as email,
           initcap(r.role) || case when r.role = 'driver' then ' ' || r.n else '' end as full_name,
           pg_temp.manifold_seed_id(v_org, 'user', r.role || r.n) as user_id
    from (select unnest(array['owner', 'admin', 'manager', 'plant', 'viewer']) as role, 1 as n
          union all
          select 'driver', d from generate_series(1, v_drivers) d) r;

    insert into auth.users (instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
                            confirmation_token, recovery_token, email_change_token_new, email_change,
                            email_change_token_current, phone_change, phone_change_token,
                            reauthentication_token, raw_app_meta_data, raw_user_meta_data,
                            is_super_admin, created_at, updated_at, is_anonymous)
    select '00000000-0000-0000-0000-000000000000', s.user_id, 'authenticated', 'authenticated', s.email,
           v_pw, now(), '', '', '', '', '', '', '', '',
           '{"provider": "email", "providers": ["email"]}', jsonb_build_object('full_name', s.full_name),
           false, now(), now(), false
    from seed_people s;
    insert into auth.identities (provider_id, user_id, identity_data, provider, created_at, updated_at)
    select s.user_id::text, s.user_id,
           jsonb_build_object('sub', s.user_id::text, 'email', s.email, 'email_verified', true,
                              'phone_verified', false),
           'email', now(), now()
    from seed_people s;

    v_plant_user := pg_temp.manifold_seed_id(v_org, 'user', 'plant1');
    v_depot := pg_temp.manifold_seed_id(v_org, 'location', 'depot');
    v_plant := pg_temp.manifold_seed_id(v_org, 'location', 'plant');
    insert into locations (id, organization_id, kind, name, address, lat, lng) values
      (v_depot, v_org, 'branch', 'Main depot', '1 Depot Road', 41.88, -87.63),
      (v_plant, v_org, 'fill_plant', 'Fill plant', '2 Plant Street', 41.90, -87.70),
      (pg_temp.manifold_seed_id(v_org, 'location', 'north'), v_org, 'branch', 'North branch',
       '9 North Avenue', 42.05, -87.68),
      (pg_temp.manifold_seed_id(v_org, 'location', 'retester'), v_org, 'retester', 'Hydro retest lab',
       '5 Test Lane', 41.80, -87.60);
    insert into vehicles (id, organization_id, unit_number, plate, capacity_cylinders, home_location_id)
    select pg_temp.manifold_seed_id(v_org, 'vehicle', d::text), v_org, 'T-' || lpad(d::text, 2, '0'),
           'GAS-' || lpad(d::text, 3, '0'), 120, v_depot
    from generate_series(1, v_drivers) d;
    insert into profiles (user_id, organization_id, full_name, role, phone, home_location_id, default_vehicle_id)
    select s.user_id, v_org, s.full_name, s.role, '+1-555-01' || lpad((s.n % 100)::text, 2, '0'), v_depot,
           case when s.role = 'driver' then pg_temp.manifold_seed_id(v_org, 'vehicle', s.n::text) end
    from seed_people s;

    create temp table seed_types on commit drop as
    select pg_temp.manifold_seed_id(v_org, 'type', t.code) as id, t.*
    from (values
      (1, 'OX-K', 'Oxygen, industrial, size K', 'oxygen', 'K', 'high_pressure', 'industrial', 285.00),
      (2, 'AR-K', 'Argon, size K', 'argon', 'K', 'high_pressure', 'industrial', 310.00),
      (3, 'CO2-50', 'Carbon dioxide, 50 lb', 'co2', '50lb', 'high_pressure', 'food', 240.00),
      (4, 'NI-K', 'Nitrogen, size K', 'nitrogen', 'K', 'high_pressure', 'industrial', 270.00),
      (5, 'AC-4', 'Acetylene, size 4', 'acetylene', '4', 'acetylene', 'industrial', 420.00),
      (6, 'PR-20', 'Propane, 20 lb', 'propane', '20lb', 'lpg', 'industrial', 60.00),
      (7, 'HE-K', 'Helium, size K', 'helium', 'K', 'high_pressure', 'specialty', 350.00),
      (8, 'MOX-E', 'Oxygen, medical, size E', 'oxygen', 'E', 'high_pressure', 'medical', 150.00)
    ) as t(n, code, description, gas, size, class, grade, cost);
    insert into bottle_types (id, organization_id, product_code, description, gas_type, size,
                              container_class, grade, replacement_cost, default_spec)
    select t.id, v_org, t.code, t.description, t.gas, t.size, t.class, t.grade, t.cost,
           case when t.class = 'lpg' then 'DOT-4BA240' else 'DOT-3AA2015' end
    from seed_types t;

    insert into customers (id, organization_id, "CustomerListID", name, email, phone, address,
                           customer_type, status, account_number, lat, lng, delivery_instructions,
                           default_route_name)
    select pg_temp.manifold_seed_id(v_org, 'customer', c::text), v_org,
           to_hex(2147483648 + c) || '-' || (1273620000 + c)::text,
           (array['Acme', 'Summit', 'Riverside', 'Northern', 'Keystone', 'Harbor', 'Pioneer', 'Granite',
                  'Lakeside', 'Union', 'Beacon', 'Cedar', 'Eagle', 'Frontier', 'Liberty', 'Maple'])
             [1 + pg_temp.manifold_seed_hash(c) % 16] || ' ' ||
           (array['Welding', 'Fabrication', 'Brewing', 'Clinic', 'Labs', 'Auto Body', 'Machine Shop',
                  'Hospital', 'Dental', 'Foods', 'Metalworks', 'Supply'])
             [1 + pg_temp.manifold_seed_hash(c * 7) % 12] || ' #' || c,
           'orders' || c || '@customer' || (c % 97) || '.test', '+1-555-2' || lpad((c % 1000)::text, 3, '0'),
           c || ' Industrial Parkway',
           (array['industrial', 'medical', 'welding', 'beverage', 'lab', 'retail'])
             [1 + pg_temp.manifold_seed_hash(c * 13) % 6],
           case when c % 50 = 0 then 'on_hold' else 'active' end,
           'C' || lpad(c::text, 6, '0'),
           41.6 + (pg_temp.manifold_seed_hash(c * 17) % 6000) / 10000.0,
           -88.0 + (pg_temp.manifold_seed_hash(c * 19) % 6000) / 10000.0,
           case when c % 5 = 0 then 'Dock at the back; call on arrival' end,
           'Route ' || (1 + pg_temp.manifold_seed_hash(c) % 5)
    from generate_series(1, v_customers) c;
    insert into customer_billing (customer_id, organization_id, credit_limit, payment_terms,
                                  payment_terms_days, tax_exempt, on_credit_hold, billing_email)
    select pg_temp.manifold_seed_id(v_org, 'customer', c::text), v_org, 5000, 'Net 30', 30,
           c % 11 = 0, c % 97 = 0, 'ap' || c || '@customer' || (c % 97) || '.test'
    from generate_series(1, v_customers) c;

    -- The bulk: cylinders, their events, custody, deliveries and routes, as the engine would
    -- have written them.
    set local session_replication_role = replica;

    -- One row per cylinder and round: who it went to, and when each scan happened. Round
    -- `v_turns` is the partial last one; its `stage` is how far it got (0 none, 1 filled,
    -- 2 loaded for today's route, 3 delivered).
    create temp table seed_rounds on commit drop as
    with b as (
      select i, pg_temp.manifold_seed_hash(i) as h from generate_series(1, v_bottles) i
    ), r as (
      select b.i, b.h, j, (b.h % 4)::int as stage,
             (1 + pg_temp.manifold_seed_hash(b.i * 31 + j) % v_customers)::int as customer,
             v_base + j * v_span as round_day
      from b cross join generate_series(0, v_turns) j
    ), d as (
      select r.*,
             case when r.j = v_turns and r.stage = 2 then current_date
                  when r.j = v_turns then pg_temp.manifold_seed_snap(
                    r.round_day + 2 + (r.h % (v_span - 10))::int, r.customer)
                  else pg_temp.manifold_seed_snap(r.round_day + 2, r.customer) end as out_day,
             pg_temp.manifold_seed_snap(r.round_day + v_span - 8, r.customer) as back_day
      from r
      where r.j < v_turns or r.stage > 0
    )
    , x as (
    select d.i, d.j, d.stage, d.customer, d.out_day,
           case when d.j < v_turns then d.back_day end as back_day,
           (1 + pg_temp.manifold_seed_hash(d.customer * 100003 + (d.out_day - date '2000-01-01')) % v_drivers)::int
             as driver_out,
           case when d.j < v_turns then
             (1 + pg_temp.manifold_seed_hash(d.customer * 100003 + (d.back_day - date '2000-01-01')) % v_drivers)::int
           end as driver_back,
           d.out_day - 1 + interval '14 hours' as fill_at,
           case when d.j = v_turns and d.stage = 2
                then least(d.out_day + interval '6 hours', now() - interval '1 minute')
                else d.out_day + interval '6 hours' end as load_at,
           d.out_day + interval '10 hours' + make_interval(mins => (d.h % 120)::int) as deliver_at,
           case when d.j < v_turns then d.back_day + interval '11 hours' end as return_at,
           case when d.j < v_turns then d.back_day + interval '17 hours' end as unload_at
    from d
    )
    -- The ids each round's scans refer to, computed once per round rather than per scan.
    select x.*,
           pg_temp.manifold_seed_seq_id(v_org, 'bottle', x.i) as bottle_id,
           pg_temp.manifold_seed_id(v_org, 'customer', x.customer::text) as customer_id,
           pg_temp.manifold_seed_id(v_org, 'vehicle', x.driver_out::text) as vehicle_out,
           pg_temp.manifold_seed_id(v_org, 'vehicle', x.driver_back::text) as vehicle_back,
           pg_temp.manifold_seed_id(v_org, 'user', 'driver' || x.driver_out) as user_out,
           pg_temp.manifold_seed_id(v_org, 'user', 'driver' || x.driver_back) as user_back,
           pg_temp.manifold_seed_id(v_org, 'delivery', x.customer || ':' || x.out_day) as delivery_out,
           pg_temp.manifold_seed_id(v_org, 'delivery', x.customer || ':' || x.back_day) as delivery_back,
           pg_temp.manifold_seed_id(v_org, 'route', x.driver_out || ':' || x.out_day) as route_out,
           pg_temp.manifold_seed_id(v_org, 'route', x.driver_back || ':' || x.back_day) as route_back
    from x;
    create index on seed_rounds (i, j);
    analyze seed_rounds;

    -- Cylinders, with their derived state taken from their last round.
    insert into bottles (id, organization_id, bottle_type_id, serial_number, barcode_number, product_code,
                         description, size, type, gas_type, status, location, customer_name,
                         rental_start_date, rental_end_date, last_inspection_date, next_inspection_date,
                         purchase_date, purchase_price, current_value, condition, spec, service_pressure,
                         pressure_unit, material, manufacturer, manufacture_date, ownership, fill_state,
                         current_location_id, current_vehicle_id, current_customer_id, custody_since,
                         last_event_id, last_event_at, last_filled_at, created_at, updated_at)
    select pg_temp.manifold_seed_seq_id(v_org, 'bottle', b.i), v_org, t.id,
           'SN' || lpad(b.i::text, 8, '0'), 'GC' || lpad(b.i::text, 8, '0'), t.code, t.description, t.size,
           t.class, t.gas, s.status, null, case when s.status = 'at_customer' then cu.name end,
           -- As the engine keeps them: the start of the latest stay, the end of the last closed one.
           case when s.status = 'at_customer' then p.out_day else l.out_day end,
           case when s.status <> 'at_customer' then l.back_day end,
           n.next_due - interval '5 years', n.next_due, v_base - 400, t.cost, round(t.cost * 0.7, 2),
           'good', case when t.class = 'lpg' then 'DOT-4BA240' else 'DOT-3AA2015' end,
           case when t.class = 'lpg' then 240 else 2015 end, 'psi',
           'steel',
           (array['Worthington', 'Norris', 'Luxfer', 'Faber'])[1 + pg_temp.manifold_seed_hash(b.i * 3) % 4],
           (n.next_due - interval '5 years')::date, 'company', s.fill_state,
           s.location_id, s.vehicle_id, s.customer_id, s.since,
           s.event_id, s.since, coalesce(p.fill_at, l.fill_at), v_base, now()
    from generate_series(1, v_bottles) b(i)
    join seed_types t on t.n = 1 + (b.i % 8)
    join seed_rounds l on l.i = b.i and l.j = v_turns - 1
    left join seed_rounds p on p.i = b.i and p.j = v_turns
    cross join lateral (
      -- Due dates from next month to about five years out: some cylinders are due soon.
      select (date_trunc('month', current_date) + interval '1 month'
              + make_interval(days => (pg_temp.manifold_seed_hash(b.i * 5) % 1800)::int))::date as next_due
    ) n
    left join customers cu on cu.organization_id = v_org
      and cu.id = p.customer_id
    cross join lateral (
      select case coalesce(p.stage, 0)
               when 0 then 'empty' when 1 then 'full' when 2 then 'on_truck' else 'at_customer' end as status,
             case coalesce(p.stage, 0) when 0 then 'empty' else 'full' end as fill_state,
             case coalesce(p.stage, 0) when 0 then v_depot when 1 then v_plant end as location_id,
             case when p.stage = 2 then p.vehicle_out end as vehicle_id,
             case when p.stage = 3 then p.customer_id end as customer_id,
             case coalesce(p.stage, 0) when 0 then l.unload_at when 1 then p.fill_at
               when 2 then p.load_at else p.deliver_at end as since,
             case when p.stage is null
                  then pg_temp.manifold_seed_seq_id(v_org, 'event', b.i * 64 + l.j * 8 + 5)
                  else pg_temp.manifold_seed_seq_id(v_org, 'event', b.i * 64 + p.j * 8 + p.stage) end
               as event_id
    ) s;
    get diagnostics v_rows = row_count;
    v_bottles_total := v_bottles_total + v_rows;

    -- The event log: a registration, then the scans of every round.
    insert into bottle_events (id, organization_id, occurred_at, recorded_at, event_type, bottle_id,
                               bottle_type_id, from_status, to_status, fill_state_after, location_id,
                               actor_user_id, device_id, scan_method, raw_code, data, applied)
    select pg_temp.manifold_seed_seq_id(v_org, 'event', b.i * 64 + 7), v_org,
           v_base + interval '8 hours', v_base + interval '8 hours', 'register',
           pg_temp.manifold_seed_seq_id(v_org, 'bottle', b.i), t.id, null, 'empty', 'empty', v_depot,
           v_plant_user, 'plant-scanner-1', 'barcode',
           'GC' || lpad(b.i::text, 8, '0'),
           '{"requested_status": "empty", "ownership": "company", "owner_customer_id": null}', true
    from generate_series(1, v_bottles) b(i)
    join seed_types t on t.n = 1 + (b.i % 8);
    get diagnostics v_rows = row_count;
    v_events := v_events + v_rows;

    insert into bottle_events (id, organization_id, occurred_at, recorded_at, event_type, bottle_id,
                               bottle_type_id, from_status, to_status, fill_state_after, customer_id,
                               location_id, vehicle_id, delivery_id, route_id, actor_user_id, device_id,
                               scan_method, raw_code, data, applied)
    select pg_temp.manifold_seed_seq_id(v_org, 'event', r.i * 64 + r.j * 8 + k.step), v_org,
           k.at, k.at, k.event_type, r.bottle_id, t.id, k.from_status, k.to_status, k.fill_after,
           case when k.step in (3, 4) then r.customer_id end,
           case k.step when 1 then v_plant when 5 then v_depot end,
           case when k.step in (2, 3) then r.vehicle_out when k.step = 4 then r.vehicle_back end,
           case k.step when 3 then r.delivery_out when 4 then r.delivery_back end,
           case when k.step in (2, 3) then r.route_out when k.step = 4 then r.route_back end,
           case when k.step = 1 then v_plant_user when k.step in (2, 3) then r.user_out else r.user_back end,
           case when k.step = 1 then 'plant-scanner-1' else 'handheld-' || k.driver end,
           'barcode', 'GC' || lpad(r.i::text, 8, '0'), '{}', true
    from seed_rounds r
    join seed_types t on t.n = 1 + (r.i % 8)
    cross join lateral (values
      (1, 'fill', 'empty', 'full', 'full', r.fill_at, r.driver_out),
      (2, 'load', 'full', 'on_truck', 'full', r.load_at, r.driver_out),
      (3, 'deliver', 'on_truck', 'at_customer', 'full', r.deliver_at, r.driver_out),
      (4, 'return', 'at_customer', 'on_truck', 'empty', r.return_at, r.driver_back),
      (5, 'unload', 'on_truck', 'empty', 'empty', r.unload_at, r.driver_back)
    ) as k(step, event_type, from_status, to_status, fill_after, at, driver)
    where r.j < v_turns or k.step <= r.stage;
    get diagnostics v_rows = row_count;
    v_events := v_events + v_rows;

    -- Custody periods: closed by each return, open for cylinders still at a customer.
    insert into rentals (organization_id, customer_id, bottle_id, bottle_type_id, rental_start_date,
                         rental_end_date, status, started_at, ended_at, start_event_id, end_event_id,
                         end_reason, billable)
    select v_org, r.customer_id, r.bottle_id, t.id, r.out_day,
           r.back_day, case when r.back_day is null then 'active' else 'closed' end,
           r.deliver_at, r.return_at,
           pg_temp.manifold_seed_seq_id(v_org, 'event', r.i * 64 + r.j * 8 + 3),
           case when r.back_day is not null then pg_temp.manifold_seed_seq_id(v_org, 'event', r.i * 64 + r.j * 8 + 4) end,
           case when r.back_day is not null then 'returned' end, true
    from seed_rounds r
    join seed_types t on t.n = 1 + (r.i % 8)
    where r.j < v_turns or r.stage = 3;

    -- Deliveries: one stop per customer and day, with what was delivered and picked up there.
    create temp table seed_stops on commit drop as
    select s.customer, s.day, min(s.driver) as driver,
           count(*) filter (where s.delivered) as delivered, count(*) filter (where not s.delivered) as returned,
           bool_or(s.today) as today
    from (
      select r.customer, r.out_day as day, r.driver_out as driver, true as delivered,
             r.j = v_turns and r.stage = 2 as today
      from seed_rounds r where r.j < v_turns or r.stage >= 2
      union all
      select r.customer, r.back_day, r.driver_back, false, false
      from seed_rounds r where r.j < v_turns
    ) s
    group by s.customer, s.day;

    insert into routes (id, organization_id, route_date, name, driver_id, vehicle_id, start_location_id,
                        status, started_at, ended_at)
    select pg_temp.manifold_seed_id(v_org, 'route', s.driver || ':' || s.day), v_org, s.day,
           'Route ' || s.driver, pg_temp.manifold_seed_id(v_org, 'user', 'driver' || s.driver),
           pg_temp.manifold_seed_id(v_org, 'vehicle', s.driver::text), v_depot,
           case when bool_or(s.today) then 'in_progress' else 'completed' end,
           s.day + interval '6 hours',
           case when not bool_or(s.today) then s.day + interval '18 hours' end
    from seed_stops s
    group by s.driver, s.day;

    insert into deliveries (id, organization_id, customer_id, delivery_date, delivery_address,
                            contact_person, status, driver_id, vehicle_id, route_id, signature, photos,
                            delivery_time, delivery_number, kind, stop_sequence, window_start, window_end,
                            signed_by_name, pod_lat, pod_lng, pod_accuracy_m, completed_at,
                            delivered_count, returned_count)
    select d.id, v_org, pg_temp.manifold_seed_id(v_org, 'customer', s.customer::text), s.day,
           cu.address, 'Receiving desk', case when s.today then 'assigned' else 'completed' end,
           pg_temp.manifold_seed_id(v_org, 'user', 'driver' || s.driver),
           pg_temp.manifold_seed_id(v_org, 'vehicle', s.driver::text),
           pg_temp.manifold_seed_id(v_org, 'route', s.driver || ':' || s.day),
           case when not s.today then v_org || '/deliveries/' || d.id || '/signature.png' end,
           case when not s.today then array[v_org || '/deliveries/' || d.id || '/photo-1.jpg'] else '{}' end,
           case when not s.today then s.day + interval '10 hours' end,
           'D' || to_char(s.day, 'YYMMDD') || '-' || lpad(s.customer::text, 6, '0'),
           case when s.delivered > 0 and s.returned > 0 then 'exchange'
                when s.delivered > 0 then 'delivery' else 'pickup' end,
           row_number() over (partition by s.driver, s.day order by s.customer),
           s.day + interval '8 hours', s.day + interval '16 hours',
           case when not s.today then 'Receiving desk' end,
           case when not s.today then cu.lat end, case when not s.today then cu.lng end,
           case when not s.today then 8 end,
           case when not s.today then s.day + interval '12 hours' end,
           case when not s.today then s.delivered end, case when not s.today then s.returned end
    from seed_stops s
    cross join lateral (select pg_temp.manifold_seed_id(v_org, 'delivery', s.customer || ':' || s.day) as id) d
    join customers cu on cu.organization_id = v_org
      and cu.id = pg_temp.manifold_seed_id(v_org, 'customer', s.customer::text);
    get diagnostics v_rows = row_count;
    v_deliveries := v_deliveries + v_rows;

    insert into delivery_items (organization_id, delivery_id, bottle_type_id, qty_ordered, qty_delivered,
                                qty_returned, unit_price)
    select v_org, x.delivery_id, x.type_id, sum(x.delivered),
           coalesce(sum(x.delivered) filter (where not x.today), 0), sum(x.returned), 25.00
    from (
      select r.delivery_out as delivery_id, t.id as type_id, 1 as delivered, 0 as returned,
             r.j = v_turns and r.stage = 2 as today
      from seed_rounds r join seed_types t on t.n = 1 + (r.i % 8)
      where r.j < v_turns or r.stage >= 2
      union all
      select r.delivery_back, t.id, 0, 1, false
      from seed_rounds r join seed_types t on t.n = 1 + (r.i % 8)
      where r.j < v_turns
    ) x
    group by x.delivery_id, x.type_id;

    set local session_replication_role = origin;
    drop table seed_people, seed_types, seed_rounds, seed_stops;
    v_orgs_out := v_orgs_out || jsonb_build_object('id', v_org, 'slug', v_slug);
  end loop;

  for v_def in select d.def from seed_deferred d loop
    execute v_def;
  end loop;

  return jsonb_build_object(
    'organizations', v_orgs_out,
    'bottles', v_bottles_total,
    'events', v_events,
    'deliveries', v_deliveries,
    'elapsed_ms', (extract(epoch from clock_timestamp() - v_started) * 1000)::bigint
  );
end
$fn$;
