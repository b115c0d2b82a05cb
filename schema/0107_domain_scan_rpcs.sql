-- Gas-cylinder domain, part 8: the RPCs drivers, plant and office call for cylinders and
-- deliveries (POST /rest/v1/rpc/<name>). Every one is SECURITY DEFINER with an empty search_path,
-- starts by reading the caller's organization and role, filters every statement by that
-- organization itself (it bypasses RLS), and is not executable by anon. Batch scans answer one
-- result per code instead of failing the whole batch; client event ids make retries safe.

-- Errors with an HTTP status of their choosing (PostgREST's RAISE SQLSTATE 'PGRST' form).
create function app.http_error(p_status int, p_code text, p_message text, p_details jsonb default null,
                               p_hint text default null)
returns void
language plpgsql volatile set search_path = ''
as $$
begin
  raise sqlstate 'PGRST' using
    message = jsonb_build_object('code', p_code, 'message', p_message, 'details', p_details, 'hint', p_hint)::text,
    detail = jsonb_build_object('status', p_status, 'headers', '{}'::jsonb)::text;
end
$$;

create function app.not_found(p_what text, p_id uuid) returns void
language sql volatile set search_path = ''
as $$
  select app.http_error(404, 'not_found', format('%s %s not found in your organization', p_what, p_id))
$$;

-- Lapsed subscriptions keep reading but stop writing.
create function app.require_writable() returns void
language plpgsql stable security definer set search_path = ''
as $$
begin
  if not app.org_can_write() then
    perform app.http_error(402, 'subscription_inactive',
      'the organization''s subscription does not allow changes', null,
      'Renew the subscription; all data stays readable');
  end if;
end
$$;

-- Barcode first, then RFID, then serial (serials repeat across manufacturers: may be several).
create function app.resolve_code(p_org uuid, p_code text) returns uuid[]
language sql stable security definer set search_path = ''
as $$
  select coalesce(
    (select array[b.id] from public.bottles b
     where b.organization_id = p_org and b.barcode_number = p_code and b.deleted_at is null),
    (select array[b.id] from public.bottles b
     where b.organization_id = p_org and b.rfid_tag = p_code and b.deleted_at is null),
    (select array_agg(b.id order by b.id) from public.bottles b
     where b.organization_id = p_org and b.serial_number = p_code and b.deleted_at is null),
    '{}'::uuid[])
$$;

-- A delivery the caller may work on, locked: any of the organization's for office roles, only
-- their own for a driver.
create function app.workable_delivery(p_org uuid, p_delivery_id uuid) returns public.deliveries
language plpgsql security definer set search_path = ''
as $$
declare
  d public.deliveries;
begin
  select * into d from public.deliveries x
  where x.organization_id = p_org and x.id = p_delivery_id and x.deleted_at is null
  for update;
  if not found then
    perform app.not_found('delivery', p_delivery_id);
  end if;
  if app.current_role() = 'driver' and d.driver_id is distinct from auth.uid() then
    raise exception 'delivery % is not assigned to you', p_delivery_id using errcode = '42501';
  end if;
  return d;
end
$$;

-- Scans recorded on a stop after it was closed would escape its proof of delivery and its
-- order-line counts (both are fixed by complete_delivery), so closed stops take no more.
create function app.require_open_delivery(d public.deliveries) returns void
language plpgsql stable set search_path = ''
as $$
begin
  if d.status in ('completed', 'partial', 'failed', 'cancelled') then
    perform app.http_error(409, 'delivery_closed', format('the delivery is %s', d.status));
  end if;
end
$$;

create function app.workable_route(p_org uuid, p_route_id uuid) returns public.routes
language plpgsql security definer set search_path = ''
as $$
declare
  r public.routes;
begin
  select * into r from public.routes x
  where x.organization_id = p_org and x.id = p_route_id and x.deleted_at is null;
  if not found then
    perform app.not_found('route', p_route_id);
  end if;
  if app.current_role() = 'driver' and r.driver_id is distinct from auth.uid() then
    raise exception 'route % is not assigned to you', p_route_id using errcode = '42501';
  end if;
  return r;
end
$$;

create function app.require_in_org(p_org uuid, p_table text, p_id uuid) returns void
language plpgsql stable security definer set search_path = ''
as $$
declare
  present boolean;
begin
  if p_id is null then
    return;
  end if;
  present := case p_table
    when 'customer' then exists (select 1 from public.customers x
                                 where x.organization_id = p_org and x.id = p_id and x.deleted_at is null)
    when 'vehicle' then exists (select 1 from public.vehicles x
                                where x.organization_id = p_org and x.id = p_id and x.deleted_at is null)
    when 'location' then exists (select 1 from public.locations x
                                 where x.organization_id = p_org and x.id = p_id and x.deleted_at is null)
    when 'cylinder' then exists (select 1 from public.bottles x
                                 where x.organization_id = p_org and x.id = p_id and x.deleted_at is null)
        else false
  end;
  if not present then
    perform app.not_found(p_table, p_id);
  end if;
end
$$;

-- Applies one event type to a batch of scans. A scan is a code string or an object
-- {code | bottle_id, id, occurred_at, scan_method, lat, lng, accuracy_m, device_id,
-- client_batch_id, fill_state, data}. `p_context` carries what every scan shares (customer_id,
-- vehicle_id, location_id, delivery_id, route_id, fill_state, occurred_at, data). Refused scans
-- become open scan exceptions for the office.
create function app.scan_batch(p_org uuid, p_event_type text, p_scans jsonb, p_context jsonb)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  item jsonb;
  idx bigint;
  code text;
  ids uuid[];
  e public.bottle_events;
  res jsonb;
  results jsonb := '[]'::jsonb;
  ok_count int := 0;
  failed_count int := 0;
  why text;
  what text;
begin
  if p_scans is null or jsonb_typeof(p_scans) <> 'array' then
    raise exception 'scans must be a JSON array of codes or scan objects' using errcode = '22023';
  end if;
  if jsonb_array_length(p_scans) > 2000 then
    raise exception 'at most 2000 scans per call' using errcode = '22023';
  end if;
  for item, idx in select s.value, s.ordinality from jsonb_array_elements(p_scans) with ordinality s loop
    code := null;
    e := null;
    begin
      if jsonb_typeof(item) = 'string' then
        code := item #>> '{}';
        item := jsonb_build_object('code', code);
      elsif jsonb_typeof(item) = 'object' then
        code := coalesce(item ->> 'code', item ->> 'bottle_id');
      else
        perform app.refuse('invalid_scan', 'a scan is a code string or an object');
      end if;
      e.id := coalesce((item ->> 'id')::uuid, gen_random_uuid());
      if item ? 'bottle_id' then
        ids := array[(item ->> 'bottle_id')::uuid];
      elsif coalesce(btrim(code), '') = '' then
        perform app.refuse('invalid_scan', 'a scan needs a code or a bottle_id');
      else
        ids := app.resolve_code(p_org, code);
      end if;
      if cardinality(ids) = 0 then
        perform app.refuse('unknown_code', format('no cylinder has the code %s', code));
      elsif cardinality(ids) > 1 then
        perform app.refuse('duplicate_match',
          format('%s matches %s cylinders by serial number; scan the barcode', code, cardinality(ids)));
      end if;
      e.organization_id := p_org;
      e.event_type := p_event_type;
      e.bottle_id := ids[1];
      e.occurred_at := least(
        coalesce((item ->> 'occurred_at')::timestamptz, (p_context ->> 'occurred_at')::timestamptz, now()),
        now());
      e.customer_id := (p_context ->> 'customer_id')::uuid;
      e.location_id := (p_context ->> 'location_id')::uuid;
      e.vehicle_id := (p_context ->> 'vehicle_id')::uuid;
      e.delivery_id := (p_context ->> 'delivery_id')::uuid;
      e.route_id := (p_context ->> 'route_id')::uuid;
      e.fill_state_after := coalesce(item ->> 'fill_state', p_context ->> 'fill_state');
      e.scan_method := coalesce(item ->> 'scan_method', case when item ? 'bottle_id' then 'manual' else 'barcode' end);
      e.raw_code := code;
      e.device_id := coalesce(item ->> 'device_id', p_context ->> 'device_id');
      e.client_batch_id := coalesce(item ->> 'client_batch_id', p_context ->> 'client_batch_id')::uuid;
      e.lat := (item ->> 'lat')::double precision;
      e.lng := (item ->> 'lng')::double precision;
      e.accuracy_m := (item ->> 'accuracy_m')::double precision;
      e.data := coalesce(p_context -> 'data', '{}'::jsonb) || coalesce(item -> 'data', '{}'::jsonb);
      res := app.record_event(e);
      ok_count := ok_count + 1;
    exception
      when sqlstate 'MFS01' then
        get stacked diagnostics why = pg_exception_detail, what = message_text;
        res := jsonb_build_object('ok', false, 'status', 'error', 'error', why, 'message', what);
      when foreign_key_violation then
        res := jsonb_build_object('ok', false, 'status', 'error', 'error', 'wrong_org',
          'message', 'a customer, vehicle, location, delivery or route of this scan is not in your organization');
      when invalid_text_representation or invalid_datetime_format or datetime_field_overflow
           or numeric_value_out_of_range or check_violation or invalid_parameter_value then
        get stacked diagnostics what = message_text;
        res := jsonb_build_object('ok', false, 'status', 'error', 'error', 'invalid_scan', 'message', what);
    end;
    if not (res ->> 'ok')::boolean then
      failed_count := failed_count + 1;
      insert into public.scan_exceptions (organization_id, raw_code, scan_method, event_id, event_payload,
                                          reason, message)
      values (p_org, code, case when item ->> 'scan_method' in ('barcode', 'rfid', 'qr', 'manual') then item ->> 'scan_method' end,
              e.id, jsonb_build_object('event_type', p_event_type, 'scan', item, 'context', p_context),
              case when res ->> 'error' in ('unknown_code', 'duplicate_match', 'invalid_transition', 'blocked',
                                            'out_of_test', 'wrong_org') then res ->> 'error'
                   else 'invalid_scan' end,
              res ->> 'message')
      on conflict (organization_id, event_id) where event_id is not null do nothing;
    end if;
    results := results || jsonb_build_array(jsonb_build_object('index', idx - 1, 'code', code) || res);
  end loop;
  return jsonb_build_object('ok', ok_count, 'failed', failed_count, 'results', results);
end
$$;

-- Not-scanned quantities (DNS/RNS) into the ledger: [{product_code | bottle_type_id, delivered,
-- returned}].
create function app.record_not_scanned(p_org uuid, p_customer_id uuid, p_delivery_id uuid, p_lines jsonb,
                                       p_at timestamptz)
returns int
language plpgsql security definer set search_path = ''
as $$
declare
  line jsonb;
  type_id uuid;
  n int := 0;
  delivered int;
  returned int;
begin
  if p_lines is null or jsonb_typeof(p_lines) <> 'array' then
    raise exception 'not-scanned lines must be a JSON array' using errcode = '22023';
  end if;
  for line in select value from jsonb_array_elements(p_lines) loop
    select t.id into type_id from public.bottle_types t
    where t.organization_id = p_org
      and (t.id::text = line ->> 'bottle_type_id' or t.product_code = line ->> 'product_code');
    if type_id is null then
      raise exception 'unknown product in not-scanned line %', line using errcode = '22023';
    end if;
    delivered := coalesce((line ->> 'delivered')::int, 0);
    returned := coalesce((line ->> 'returned')::int, 0);
    if delivered < 0 or returned < 0 then
      raise exception 'not-scanned quantities are counts (>= 0)' using errcode = '22023';
    end if;
    if delivered > 0 then
      insert into public.balance_adjustments (organization_id, customer_id, bottle_type_id, occurred_at, delta,
                                              reason, delivery_id)
      values (p_org, p_customer_id, type_id, p_at, delivered, 'dns', p_delivery_id);
      n := n + 1;
    end if;
    if returned > 0 then
      insert into public.balance_adjustments (organization_id, customer_id, bottle_type_id, occurred_at, delta,
                                              reason, delivery_id)
      values (p_org, p_customer_id, type_id, p_at, -returned, 'rns', p_delivery_id);
      n := n + 1;
    end if;
  end loop;
  return n;
end
$$;

-- Lookup ------------------------------------------------------------------------------------------

create function public.lookup_bottle(p_code text)
returns table (
  id uuid, serial_number text, barcode_number text, rfid_tag text, product_code text, description text,
  status text, fill_state text, is_blocked boolean, blocked_reason text, ownership text,
  current_customer_id uuid, customer_name text, current_location_id uuid, location_name text,
  current_vehicle_id uuid, vehicle_unit text, last_inspection_date date, next_inspection_date date,
  out_of_test boolean, last_event_at timestamptz, matched_by text)
language plpgsql stable security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver', 'plant', 'viewer');
begin
  return query
  select b.id, b.serial_number, b.barcode_number, b.rfid_tag, b.product_code, b.description, b.status,
         b.fill_state, b.is_blocked, b.blocked_reason, b.ownership, b.current_customer_id, b.customer_name,
         b.current_location_id, l.name, b.current_vehicle_id, v.unit_number, b.last_inspection_date,
         b.next_inspection_date, app.out_of_test(b.next_inspection_date, app.org_date(org, now())),
         b.last_event_at,
         case when b.barcode_number = p_code then 'barcode' when b.rfid_tag = p_code then 'rfid' else 'serial' end
  from public.bottles b
  left join public.locations l on l.organization_id = b.organization_id and l.id = b.current_location_id
  left join public.vehicles v on v.organization_id = b.organization_id and v.id = b.current_vehicle_id
  where b.organization_id = org and b.deleted_at is null
    and b.id = any (app.resolve_code(org, p_code));
end
$$;

-- Registration ------------------------------------------------------------------------------------

-- Bulk add or import. Each row: serial_number, product_code or bottle_type_id, optional id (a
-- client uuid: a retried import answers `duplicate`), barcode_number, rfid_tag, status (empty,
-- full or at_customer with customer_id), location_id, custody_since, and descriptive fields.
-- Rows that fail validation are reported and skipped; the plan limit applies to the whole batch.
create function public.register_bottles(p_rows jsonb)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'plant');
  item jsonb;
  idx bigint;
  r public.bottles;
  accepted public.bottles[] := '{}';
  results jsonb := '[]'::jsonb;
  seen_barcodes text[] := '{}';
  seen_rfids text[] := '{}';
  problem text;
  what text;
  existing uuid;
  inserted int := 0;
begin
  perform app.require_writable();
  if p_rows is null or jsonb_typeof(p_rows) <> 'array' then
    raise exception 'p_rows must be a JSON array of cylinders' using errcode = '22023';
  end if;
  if jsonb_array_length(p_rows) > 10000 then
    raise exception 'at most 10000 cylinders per call' using errcode = '22023';
  end if;
  for item, idx in select s.value, s.ordinality from jsonb_array_elements(p_rows) with ordinality s loop
    problem := null;
    what := null;
    begin
      if jsonb_typeof(item) <> 'object' then
        problem := 'invalid_row';
        what := 'each row is a JSON object';
      else
        r := jsonb_populate_record(null::public.bottles, item);
      end if;
    exception when others then
      get stacked diagnostics what = message_text;
      problem := 'invalid_row';
    end;
    if problem is null and r.id is not null then
      select b.organization_id into existing from public.bottles b where b.id = r.id;
      if found then
        results := results || jsonb_build_array(jsonb_build_object('index', idx - 1, 'ok', existing = org,
          'status', case when existing = org then 'duplicate' else 'error' end, 'bottle_id', r.id,
          'error', case when existing <> org then 'id_conflict' end));
        continue;
      end if;
    end if;
    if problem is null then
      if coalesce(btrim(r.serial_number), '') = '' then
        problem := 'serial_required'; what := 'serial_number is required';
      else
        if r.bottle_type_id is not null then
          select t.id into r.bottle_type_id from public.bottle_types t
          where t.organization_id = org and t.id = r.bottle_type_id;
        elsif r.product_code is not null then
          select t.id into r.bottle_type_id from public.bottle_types t
          where t.organization_id = org and t.product_code = r.product_code;
        end if;
        if r.bottle_type_id is null and (item ? 'bottle_type_id' or r.product_code is not null) then
          problem := 'unknown_product'; what := format('no product %s in your organization',
            coalesce(item ->> 'bottle_type_id', r.product_code));
        elsif coalesce(r.status, 'empty') not in ('empty', 'full', 'at_customer') then
          problem := 'invalid_status'; what := 'a new cylinder is empty, full or at_customer';
        elsif r.barcode_number is not null and (r.barcode_number = any (seen_barcodes) or exists (
            select 1 from public.bottles b where b.organization_id = org and b.barcode_number = r.barcode_number
              and b.deleted_at is null)) then
          problem := 'duplicate_barcode'; what := format('barcode %s is already used', r.barcode_number);
        elsif r.rfid_tag is not null and (r.rfid_tag = any (seen_rfids) or exists (
            select 1 from public.bottles b where b.organization_id = org and b.rfid_tag = r.rfid_tag
              and b.deleted_at is null)) then
          problem := 'duplicate_rfid'; what := format('RFID tag %s is already used', r.rfid_tag);
        elsif item ? 'customer_id' and not exists (
            select 1 from public.customers c where c.organization_id = org
              and c.id::text = item ->> 'customer_id' and c.deleted_at is null) then
          problem := 'unknown_customer'; what := 'customer_id is not a customer of your organization';
        elsif coalesce(r.status, 'empty') = 'at_customer' and not item ? 'customer_id' then
          problem := 'customer_required'; what := 'a cylinder registered at a customer needs customer_id';
        elsif item ? 'location_id' and not exists (
            select 1 from public.locations l where l.organization_id = org
              and l.id::text = item ->> 'location_id' and l.deleted_at is null) then
          problem := 'unknown_location'; what := 'location_id is not a location of your organization';
        elsif r.next_inspection_date < r.last_inspection_date then
          problem := 'invalid_row'; what := 'next_inspection_date is before last_inspection_date';
        elsif r.purchase_price < 0 or r.current_value < 0 then
          problem := 'invalid_row'; what := 'money amounts are not negative';
        elsif r.ownership = 'customer' and r.owner_customer_id is null then
          problem := 'invalid_row'; what := 'a customer-owned cylinder needs owner_customer_id';
        elsif r.owner_customer_id is not null and not exists (
            select 1 from public.customers c where c.organization_id = org
              and c.id = r.owner_customer_id and c.deleted_at is null) then
          problem := 'unknown_customer'; what := 'owner_customer_id is not a customer of your organization';
        end if;
      end if;
    end if;
    if problem is not null then
      results := results || jsonb_build_array(jsonb_build_object('index', idx - 1, 'ok', false,
        'status', 'error', 'error', problem, 'message', what));
      continue;
    end if;
    r.id := coalesce(r.id, gen_random_uuid());
    r.organization_id := org;
    r.status := coalesce(r.status, 'empty');
    r.current_customer_id := (item ->> 'customer_id')::uuid;
    r.current_location_id := (item ->> 'location_id')::uuid;
    accepted := accepted || r;
    seen_barcodes := seen_barcodes || r.barcode_number;
    seen_rfids := seen_rfids || r.rfid_tag;
    results := results || jsonb_build_array(jsonb_build_object('index', idx - 1, 'ok', true,
      'status', 'ok', 'bottle_id', r.id));
  end loop;

  insert into public.bottles (
    id, organization_id, bottle_type_id, serial_number, barcode_number, rfid_tag, product_code, description,
    size, type, gas_type, status, fill_state, current_customer_id, current_location_id, custody_since,
    last_inspection_date, next_inspection_date, purchase_date, purchase_price, current_value, condition,
    notes, images, spec, service_pressure, pressure_unit, material, water_capacity_l, tare_weight_kg,
    manufacturer, manufacture_date, valve_outlet, star_eligible, end_of_life_date, ownership,
    owner_customer_id, location)
  select a.id, a.organization_id, a.bottle_type_id, a.serial_number, a.barcode_number, a.rfid_tag,
         a.product_code, a.description, a.size, a.type, a.gas_type, a.status, coalesce(a.fill_state, 'empty'),
         a.current_customer_id, a.current_location_id, a.custody_since, a.last_inspection_date,
         a.next_inspection_date, a.purchase_date, a.purchase_price, a.current_value, a.condition, a.notes,
         coalesce(a.images, '{}'), a.spec, a.service_pressure, a.pressure_unit, a.material, a.water_capacity_l,
         a.tare_weight_kg, a.manufacturer, a.manufacture_date, a.valve_outlet, coalesce(a.star_eligible, false),
         a.end_of_life_date, coalesce(a.ownership, 'company'), a.owner_customer_id, a.location
  from unnest(accepted) a;
  get diagnostics inserted = row_count;
  return jsonb_build_object('inserted', inserted,
    'failed', (select count(*) from jsonb_array_elements(results) x where not (x ->> 'ok')::boolean),
    'results', results);
end
$$;

-- Truck and customer movements ----------------------------------------------------------------------

create function public.load_truck(p_scans jsonb, p_vehicle_id uuid default null, p_route_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  r public.routes;
  vehicle uuid := p_vehicle_id;
begin
  perform app.require_writable();
  if p_route_id is not null then
    r := app.workable_route(org, p_route_id);
    vehicle := coalesce(vehicle, r.vehicle_id);
  elsif app.current_role() = 'driver' then
    raise exception 'a driver loads for one of their routes (p_route_id)' using errcode = '42501';
  end if;
  if vehicle is null then
    raise exception 'p_vehicle_id is required (the route has no vehicle)' using errcode = '22023';
  end if;
  perform app.require_in_org(org, 'vehicle', vehicle);
  return app.scan_batch(org, 'load', p_scans,
    jsonb_build_object('vehicle_id', vehicle, 'route_id', p_route_id));
end
$$;

create function public.unload_truck(p_scans jsonb, p_vehicle_id uuid default null, p_route_id uuid default null,
                                    p_location_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  r public.routes;
  vehicle uuid := p_vehicle_id;
  location uuid := p_location_id;
begin
  perform app.require_writable();
  if p_route_id is not null then
    r := app.workable_route(org, p_route_id);
    vehicle := coalesce(vehicle, r.vehicle_id);
    location := coalesce(location, r.start_location_id);
  elsif app.current_role() = 'driver' then
    raise exception 'a driver unloads for one of their routes (p_route_id)' using errcode = '42501';
  end if;
  perform app.require_in_org(org, 'vehicle', vehicle);
  perform app.require_in_org(org, 'location', location);
  location := coalesce(location,
    (select v.home_location_id from public.vehicles v where v.organization_id = org and v.id = vehicle),
    app.default_location(org));
  return app.scan_batch(org, 'unload', p_scans,
    jsonb_build_object('location_id', location, 'route_id', p_route_id));
end
$$;

-- Deliver scans at a customer: opens custody. A driver ships only on a stop assigned to them.
create function public.ship_bottles(p_customer_id uuid, p_scans jsonb, p_delivery_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  d public.deliveries;
begin
  perform app.require_writable();
  perform app.require_in_org(org, 'customer', p_customer_id);
  if p_delivery_id is not null then
    d := app.workable_delivery(org, p_delivery_id);
    if d.customer_id <> p_customer_id then
      raise exception 'delivery % is for another customer', p_delivery_id using errcode = '22023';
    end if;
    perform app.require_open_delivery(d);
  elsif app.current_role() = 'driver' then
    raise exception 'a driver ships on one of their deliveries (p_delivery_id)' using errcode = '42501';
  end if;
  return app.scan_batch(org, 'deliver', p_scans,
    jsonb_build_object('customer_id', p_customer_id, 'delivery_id', p_delivery_id, 'route_id', d.route_id));
end
$$;

-- Return scans: closes custody. Picked up onto the truck when a vehicle is known (the delivery's or
-- p_vehicle_id), else dropped off at a depot. A cylinder the system believes is at another
-- customer is taken off that customer's balance and flagged for review.
create function public.record_return(p_customer_id uuid, p_scans jsonb, p_fill_state text default 'empty',
                                     p_delivery_id uuid default null, p_vehicle_id uuid default null,
                                     p_location_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  d public.deliveries;
  vehicle uuid := p_vehicle_id;
begin
  perform app.require_writable();
  if p_fill_state is null or p_fill_state not in ('empty', 'full', 'partial', 'unknown') then
    raise exception 'p_fill_state is one of empty, full, partial, unknown' using errcode = '22023';
  end if;
  perform app.require_in_org(org, 'customer', p_customer_id);
  perform app.require_in_org(org, 'vehicle', p_vehicle_id);
  perform app.require_in_org(org, 'location', p_location_id);
  if p_delivery_id is not null then
    d := app.workable_delivery(org, p_delivery_id);
    if d.customer_id <> p_customer_id then
      raise exception 'delivery % is for another customer', p_delivery_id using errcode = '22023';
    end if;
    perform app.require_open_delivery(d);
    vehicle := coalesce(vehicle, d.vehicle_id);
  elsif app.current_role() = 'driver' then
    raise exception 'a driver records returns on one of their deliveries (p_delivery_id)' using errcode = '42501';
  end if;
  return app.scan_batch(org, 'return', p_scans,
    jsonb_build_object('customer_id', p_customer_id, 'delivery_id', p_delivery_id, 'route_id', d.route_id,
      'vehicle_id', vehicle, 'fill_state', p_fill_state,
      'location_id', case when vehicle is null then coalesce(p_location_id, app.default_location(org)) end));
end
$$;

create function public.record_not_scanned(p_customer_id uuid, p_lines jsonb, p_delivery_id uuid default null)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  d public.deliveries;
begin
  perform app.require_writable();
  perform app.require_in_org(org, 'customer', p_customer_id);
  if p_delivery_id is not null then
    d := app.workable_delivery(org, p_delivery_id);
    -- Quantities booked on a stop belong to that stop's customer, and a closed stop's counts
    -- are fixed by its proof of delivery (as ship_bottles and record_return require).
    if d.customer_id <> p_customer_id then
      perform app.http_error(422, 'customer_mismatch', 'the delivery is for another customer');
    end if;
    perform app.require_open_delivery(d);
  elsif app.current_role() = 'driver' then
    raise exception 'a driver records quantities on one of their deliveries (p_delivery_id)' using errcode = '42501';
  end if;
  return jsonb_build_object('recorded', app.record_not_scanned(org, p_customer_id, p_delivery_id, p_lines, now()));
end
$$;

-- Proof of delivery, in one transaction: the deliver and return scans, not-scanned quantities,
-- order-line counts, signature and photos (Storage paths under {org}/deliveries/{id}/), GPS,
-- device time and server time. If any scan is refused nothing is written and the error's details
-- carry the result of every code. A retried call on a completed stop returns it unchanged.
create function public.complete_delivery(
  p_delivery_id uuid,
  p_signed_by text default null,
  p_signature_path text default null,
  p_photo_paths text[] default '{}',
  p_lat double precision default null,
  p_lng double precision default null,
  p_accuracy_m double precision default null,
  p_device_time timestamptz default null,
  p_delivered jsonb default '[]',
  p_returned jsonb default '[]',
  p_not_scanned jsonb default '[]',
  p_waive_reason text default null)
returns public.deliveries
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  d public.deliveries;
  prefix text;
  object_path text;
  context jsonb;
  delivered jsonb;
  returned jsonb;
  at timestamptz := least(coalesce(p_device_time, now()), now());
  lines_short boolean;
begin
  perform app.require_writable();
  d := app.workable_delivery(org, p_delivery_id);
  if d.status in ('completed', 'partial') then
    return d;
  end if;
  if d.status in ('failed', 'cancelled') then
    perform app.http_error(409, 'delivery_closed', format('the delivery is %s', d.status));
  end if;
  if p_signature_path is null and nullif(btrim(coalesce(p_waive_reason, '')), '') is null then
    perform app.http_error(422, 'signature_required',
      'a signature path or a reason for waiving the signature is required');
  end if;
  if cardinality(coalesce(p_photo_paths, '{}')) > 10 then
    perform app.http_error(422, 'too_many_photos', 'at most 10 photos per delivery');
  end if;
  prefix := org::text || '/deliveries/' || d.id::text || '/';
  foreach object_path in array array_remove(array[p_signature_path] || coalesce(p_photo_paths, '{}'), null) loop
    if not starts_with(object_path, prefix) or length(object_path) <= length(prefix)
       or object_path like '%/../%' or object_path like '%//%' then
      perform app.http_error(422, 'invalid_object_path',
        format('%s is not a file under %s', object_path, prefix), null,
        'Upload proof of delivery to the org-files bucket under the delivery''s folder');
    end if;
  end loop;

  context := jsonb_build_object('customer_id', d.customer_id, 'delivery_id', d.id, 'route_id', d.route_id,
                                'occurred_at', at);
  delivered := app.scan_batch(org, 'deliver', coalesce(p_delivered, '[]'::jsonb), context);
  returned := app.scan_batch(org, 'return', coalesce(p_returned, '[]'::jsonb),
    context || jsonb_build_object('fill_state', 'empty', 'vehicle_id', d.vehicle_id,
      'location_id', case when d.vehicle_id is null then app.default_location(org) end));
  if (delivered ->> 'failed')::int + (returned ->> 'failed')::int > 0 then
    perform app.http_error(409, 'delivery_scans_refused',
      format('%s of %s scans were refused; nothing was recorded',
        (delivered ->> 'failed')::int + (returned ->> 'failed')::int,
        jsonb_array_length(delivered -> 'results') + jsonb_array_length(returned -> 'results')),
      jsonb_build_object('delivered', delivered -> 'results', 'returned', returned -> 'results'),
      'Fix or remove the refused codes and complete the delivery again');
  end if;
  perform app.record_not_scanned(org, d.customer_id, d.id, coalesce(p_not_scanned, '[]'::jsonb), at);

  -- Order lines take the counts of everything recorded on this stop (including addenda).
  insert into public.delivery_items (organization_id, delivery_id, bottle_type_id, qty_delivered, qty_returned)
  select org, d.id, x.bottle_type_id, sum(x.delivered)::int, sum(x.returned)::int
  from (
    select ev.bottle_type_id,
           count(*) filter (where ev.event_type = 'deliver') as delivered,
           count(*) filter (where ev.event_type = 'return') as returned
    from public.bottle_events ev
    where ev.organization_id = org and ev.delivery_id = d.id and not ev.voided
      and ev.event_type in ('deliver', 'return') and ev.bottle_type_id is not null
    group by ev.bottle_type_id
    union all
    select a.bottle_type_id, sum(greatest(a.delta, 0)), sum(greatest(-a.delta, 0))
    from public.balance_adjustments a
    where a.organization_id = org and a.delivery_id = d.id
    group by a.bottle_type_id
  ) x
  group by x.bottle_type_id
  on conflict (delivery_id, bottle_type_id) do update
    set qty_delivered = excluded.qty_delivered, qty_returned = excluded.qty_returned;

  select exists (
    select 1 from public.delivery_items i
    where i.organization_id = org and i.delivery_id = d.id and i.qty_delivered < i.qty_ordered
  ) into lines_short;

  update public.deliveries x set
    status = case when lines_short then 'partial' else 'completed' end,
    signed_by_name = p_signed_by,
    signature = p_signature_path,
    signature_waived_reason = case when p_signature_path is null then btrim(p_waive_reason) end,
    photos = coalesce(p_photo_paths, '{}'),
    pod_lat = p_lat,
    pod_lng = p_lng,
    pod_accuracy_m = p_accuracy_m,
    delivery_time = p_device_time,
    completed_at = now(),
    delivered_count = (select coalesce(sum(i.qty_delivered), 0) from public.delivery_items i
                       where i.organization_id = org and i.delivery_id = d.id),
    returned_count = (select coalesce(sum(i.qty_returned), 0) from public.delivery_items i
                      where i.organization_id = org and i.delivery_id = d.id)
  where x.organization_id = org and x.id = d.id
  returning * into d;
  return d;
end
$$;

create function public.fail_delivery(p_delivery_id uuid, p_reason text, p_photo_paths text[] default '{}')
returns public.deliveries
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'driver');
  d public.deliveries;
  prefix text;
  object_path text;
begin
  perform app.require_writable();
  d := app.workable_delivery(org, p_delivery_id);
  if nullif(btrim(coalesce(p_reason, '')), '') is null then
    raise exception 'a failed delivery needs a reason' using errcode = '22023';
  end if;
  if d.status in ('completed', 'partial', 'cancelled') then
    perform app.http_error(409, 'delivery_closed', format('the delivery is %s', d.status));
  end if;
  prefix := org::text || '/deliveries/' || d.id::text || '/';
  foreach object_path in array coalesce(p_photo_paths, '{}') loop
    if object_path is null or not starts_with(object_path, prefix) or length(object_path) <= length(prefix)
       or object_path like '%/../%' or object_path like '%//%' then
      perform app.http_error(422, 'invalid_object_path', format('%s is not a file under %s', object_path, prefix));
    end if;
  end loop;
  update public.deliveries x
  set status = 'failed', failure_reason = btrim(p_reason), photos = coalesce(p_photo_paths, '{}'),
      delivery_time = now()
  where x.organization_id = org and x.id = d.id
  returning * into d;
  return d;
end
$$;

-- Office and plant actions on cylinders ---------------------------------------------------------

create function app.ids_as_scans(p_ids uuid[]) returns jsonb
language sql immutable set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('bottle_id', i)), '[]'::jsonb) from unnest(p_ids) i
$$;

create function public.mark_lost(p_bottle_ids uuid[], p_reason text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager');
begin
  perform app.require_writable();
  return app.scan_batch(org, 'mark_lost', app.ids_as_scans(p_bottle_ids),
    jsonb_build_object('data', jsonb_build_object('reason', p_reason)));
end
$$;

-- p_where: {customer_id} (found at a customer: custody reopens) or {location_id, fill_state}.
create function public.mark_found(p_bottle_id uuid, p_where jsonb default '{}')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager');
  customer uuid := (p_where ->> 'customer_id')::uuid;
  location uuid := (p_where ->> 'location_id')::uuid;
begin
  perform app.require_writable();
  perform app.require_in_org(org, 'customer', customer);
  perform app.require_in_org(org, 'location', location);
  return app.scan_batch(org, 'found', app.ids_as_scans(array[p_bottle_id]),
    jsonb_build_object('customer_id', customer, 'fill_state', p_where ->> 'fill_state',
      'location_id', case when customer is null then coalesce(location, app.default_location(org)) end));
end
$$;

create function public.block_bottles(p_bottle_ids uuid[], p_reason text default 'hold')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'plant');
begin
  perform app.require_writable();
  if p_reason is null or p_reason not in ('recall', 'complaint', 'hold') then
    raise exception 'p_reason is one of recall, complaint, hold' using errcode = '22023';
  end if;
  return app.scan_batch(org, 'block', app.ids_as_scans(p_bottle_ids),
    jsonb_build_object('data', jsonb_build_object('reason', p_reason)));
end
$$;

create function public.unblock_bottles(p_bottle_ids uuid[])
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'plant');
begin
  perform app.require_writable();
  return app.scan_batch(org, 'unblock', app.ids_as_scans(p_bottle_ids), '{}'::jsonb);
end
$$;

-- Inter-branch move of cylinders at a depot.
create function public.transfer_bottles(p_codes jsonb, p_to_location_id uuid)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'plant');
begin
  perform app.require_writable();
  if p_to_location_id is null then
    raise exception 'p_to_location_id is required' using errcode = '22023';
  end if;
  perform app.require_in_org(org, 'location', p_to_location_id);
  return app.scan_batch(org, 'transfer_location', p_codes, jsonb_build_object('location_id', p_to_location_id));
end
$$;

-- The remaining scan actions of DOMAIN.md §4, for plant and office: fill, release, reject_lot,
-- to_maintenance, from_maintenance, send_vendor, receive_vendor, inspect_pass, condemn (plant and
-- office); locate and audit_seen (anyone who scans); transfer_customer (office); retire,
-- change_ownership and adjust (owners and admins). Movements with their own RPC (load, unload,
-- deliver, return, mark_lost, found, block, unblock, transfer_location) are refused here so their
-- rules cannot be bypassed. `p_reason` feeds condemn, retire and adjust; `p_data` is stored on
-- the event (readings, requested_status for adjust, ownership for change_ownership).
create function public.record_scans(p_event_type text, p_scans jsonb, p_location_id uuid default null,
                                    p_customer_id uuid default null, p_vehicle_id uuid default null,
                                    p_fill_state text default null, p_reason text default null,
                                    p_data jsonb default '{}')
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid;
begin
  org := case
    when p_event_type in ('fill', 'release', 'reject_lot', 'to_maintenance', 'from_maintenance', 'send_vendor',
                          'receive_vendor', 'inspect_pass', 'condemn')
      then app.require_role('owner', 'admin', 'manager', 'plant')
    when p_event_type in ('locate', 'audit_seen')
      then app.require_role('owner', 'admin', 'manager', 'driver', 'plant')
    when p_event_type = 'transfer_customer' then app.require_role('owner', 'admin', 'manager')
    when p_event_type in ('retire', 'change_ownership', 'adjust') then app.require_role('owner', 'admin')
  end;
  if org is null then
    raise exception 'record_scans does not take % events; use its own RPC', coalesce(p_event_type, 'null')
      using errcode = '22023';
  end if;
  perform app.require_writable();
  if p_fill_state is not null and p_fill_state not in ('empty', 'full', 'partial', 'unknown') then
    raise exception 'p_fill_state is one of empty, full, partial, unknown' using errcode = '22023';
  end if;
  if p_data is not null and jsonb_typeof(p_data) <> 'object' then
    raise exception 'p_data is a JSON object' using errcode = '22023';
  end if;
  perform app.require_in_org(org, 'location', p_location_id);
  perform app.require_in_org(org, 'customer', p_customer_id);
  perform app.require_in_org(org, 'vehicle', p_vehicle_id);
  return app.scan_batch(org, p_event_type, p_scans,
    jsonb_build_object('location_id', p_location_id, 'customer_id', p_customer_id, 'vehicle_id', p_vehicle_id,
      'fill_state', p_fill_state,
      'data', coalesce(p_data, '{}'::jsonb) || case when p_reason is null then '{}'::jsonb
                                                   else jsonb_build_object('reason', p_reason) end));
end
$$;

-- Rebuilds a cylinder from its history (after late offline scans were flagged).
create function public.replay_bottle(p_bottle_id uuid)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager');
begin
  perform app.require_writable();
  perform app.require_in_org(org, 'cylinder', p_bottle_id);
  return app.replay_bottle(org, p_bottle_id);
end
$$;

-- Voids an event and rebuilds the cylinder without it. Registration is not voidable (soft-delete
-- the cylinder instead).
create function public.void_event(p_event_id uuid, p_reason text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin');
  ev public.bottle_events;
  result jsonb;
begin
  perform app.require_writable();
  if nullif(btrim(coalesce(p_reason, '')), '') is null then
    raise exception 'voiding an event needs a reason' using errcode = '22023';
  end if;
  select * into ev from public.bottle_events x where x.organization_id = org and x.id = p_event_id;
  if not found then
    perform app.not_found('event', p_event_id);
  end if;
  if ev.voided then
    perform app.http_error(409, 'already_voided', 'the event is already voided');
  end if;
  if ev.event_type in ('register', 'void') then
    perform app.http_error(409, 'not_voidable', format('a %s event cannot be voided', ev.event_type));
  end if;
  perform 1 from public.bottles b where b.organization_id = org and b.id = ev.bottle_id for update;
  update public.bottle_events x set voided = true where x.id = ev.id;
  insert into public.bottle_events (organization_id, event_type, bottle_id, bottle_type_id, void_of, data, applied)
  values (org, 'void', ev.bottle_id, ev.bottle_type_id, ev.id, jsonb_build_object('reason', btrim(p_reason)), true);
  result := app.replay_bottle(org, ev.bottle_id);
  perform app.write_audit(org, 'bottle_events', ev.id, 'rpc',
    jsonb_build_object('rpc', 'void_event', 'reason', btrim(p_reason), 'event_type', ev.event_type,
                       'bottle_id', ev.bottle_id));
  return result;
end
$$;

-- Balances and reports --------------------------------------------------------------------------------

-- A customer's balance per product: scanned cylinders plus the not-scanned ledger, now or as of
-- a past instant. Office roles and viewers; a driver for a customer on one of their stops.
create function public.customer_balance(p_customer_id uuid, p_as_of timestamptz default null)
returns table (bottle_type_id uuid, product_code text, scanned bigint, not_scanned bigint, balance bigint)
language plpgsql stable security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin', 'manager', 'viewer', 'driver');
begin
  perform app.require_in_org(org, 'customer', p_customer_id);
  if app.current_role() = 'driver' and not exists (
    select 1 from public.deliveries d
    where d.organization_id = org and d.customer_id = p_customer_id and d.driver_id = auth.uid()
      and d.deleted_at is null
  ) then
    raise exception 'the customer is not on one of your deliveries' using errcode = '42501';
  end if;
  return query
  with scanned as (
    select b.bottle_type_id, count(*) as n from public.bottles b
    where p_as_of is null and b.organization_id = org and b.status = 'at_customer'
      and b.current_customer_id = p_customer_id
    group by b.bottle_type_id
    union all
    select r.bottle_type_id, count(*) from public.rentals r
    where p_as_of is not null and r.organization_id = org and r.customer_id = p_customer_id
      and r.status <> 'voided' and r.started_at <= p_as_of and (r.ended_at is null or r.ended_at > p_as_of)
    group by r.bottle_type_id
  ),
  ledger as (
    select a.bottle_type_id, sum(a.delta)::bigint as n from public.balance_adjustments a
    where a.organization_id = org and a.customer_id = p_customer_id
      and a.occurred_at <= coalesce(p_as_of, now())
    group by a.bottle_type_id
  )
  select coalesce(s.bottle_type_id, l.bottle_type_id), t.product_code, coalesce(s.n, 0), coalesce(l.n, 0),
         coalesce(s.n, 0) + coalesce(l.n, 0)
  from scanned s
  full join ledger l on l.bottle_type_id = s.bottle_type_id
  left join public.bottle_types t on t.organization_id = org and t.id = coalesce(s.bottle_type_id, l.bottle_type_id)
  order by 2;
end
$$;

-- Cylinders at customers by days since their last scan (oldest first), counted in calendar days
-- of the organization's timezone (rent days follow local midnight, DOMAIN.md §3). SECURITY
-- INVOKER: the caller's policies decide what it sees (its own organization row included).
create function public.aging_report(p_min_days int default 0)
returns table (bottle_id uuid, serial_number text, barcode_number text, product_code text,
               customer_id uuid, customer_name text, last_event_at timestamptz, days_since_scan int)
language sql stable security invoker set search_path = ''
as $$
  select b.id, b.serial_number, b.barcode_number, b.product_code, b.current_customer_id, b.customer_name,
         b.last_event_at, ((now() at time zone tz.zone)::date - (b.last_event_at at time zone tz.zone)::date)::int
  from public.bottles b
  cross join (
    select coalesce((select o.timezone from public.organizations o where o.id = (select app.current_org_id())),
                    'UTC') as zone
  ) tz
  where b.organization_id = (select app.current_org_id()) and b.status = 'at_customer'
    and b.last_event_at <= now() - make_interval(days => greatest(p_min_days, 0))
  order by b.last_event_at
$$;

-- Soft delete and restore --------------------------------------------------------------------------

create function app.soft_delete_or_restore(p_table text, p_id uuid, p_delete boolean) returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid;
  stamp timestamptz := case when p_delete then now() end;
  hit uuid;
begin
  if p_table in ('customers', 'bottles', 'locations', 'vehicles') then
    org := app.require_role('owner', 'admin');
  elsif p_table in ('deliveries', 'routes') then
    org := app.require_role('owner', 'admin', 'manager');
  else
    raise exception 'soft delete applies to customers, bottles, locations, vehicles, deliveries and routes'
      using errcode = '22023';
  end if;
  perform app.require_writable();
  if p_table = 'customers' then
    if p_delete and exists (select 1 from public.bottles b where b.organization_id = org
                            and b.current_customer_id = p_id and b.status = 'at_customer') then
      perform app.http_error(409, 'customer_holds_cylinders',
        'the customer still holds cylinders; return or transfer them first');
    end if;
    update public.customers x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
  elsif p_table = 'bottles' then
    if p_delete and exists (select 1 from public.bottles b where b.organization_id = org and b.id = p_id
                            and b.status in ('at_customer', 'on_truck')) then
      perform app.http_error(409, 'cylinder_in_custody',
        'the cylinder is at a customer or on a truck; return it first');
    end if;
    update public.bottles x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
  elsif p_table = 'locations' then
    update public.locations x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
  elsif p_table = 'vehicles' then
    update public.vehicles x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
  elsif p_table = 'deliveries' then
    update public.deliveries x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
    perform app.write_audit(org, p_table, p_id, case when p_delete then 'soft_delete' else 'restore' end, '{}');
  else
    update public.routes x set deleted_at = stamp
    where x.organization_id = org and x.id = p_id and (x.deleted_at is null) = p_delete returning x.id into hit;
    perform app.write_audit(org, p_table, p_id, case when p_delete then 'soft_delete' else 'restore' end, '{}');
  end if;
  if hit is null then
    perform app.not_found(case when p_delete then 'live row of ' else 'deleted row of ' end || p_table, p_id);
  end if;
  return jsonb_build_object('table', p_table, 'id', p_id, 'deleted_at', stamp);
end
$$;

create function public.soft_delete(p_table text, p_id uuid) returns jsonb
language sql security definer set search_path = ''
as $$
  select app.soft_delete_or_restore(p_table, p_id, true)
$$;

create function public.restore(p_table text, p_id uuid) returns jsonb
language sql security definer set search_path = ''
as $$
  select app.soft_delete_or_restore(p_table, p_id, false)
$$;
