-- Tenant isolation of the gas-cylinder domain, declared here and nowhere else: the server adds no
-- tenant filter of its own. Every tenant table has RLS enabled and forced; every policy compares
-- with `(select app.current_org_id())` (and wraps every helper in `(select …)`), so Postgres
-- evaluates the helper once per statement as an InitPlan rather than once per row.
--
-- Grants come first: anon has nothing here, and authenticated gets only the verbs (and, for
-- cylinders, organizations and profiles, only the columns) that some role may use. Event, custody
-- and ledger tables have no client write grants at all: RPCs and triggers write them.

do $$
declare
  t text;
begin
  foreach t in array array[
    'organizations', 'profiles', 'org_invitations', 'locations', 'vehicles', 'bottle_types', 'bottles',
    'bottle_status_transitions', 'scan_exceptions', 'customers', 'customer_billing', 'routes', 'deliveries',
    'delivery_items', 'bottle_events', 'rentals', 'balance_adjustments', 'audit_logs', 'business_metrics']
  loop
    execute format('revoke all on table public.%I from anon, authenticated', t);
    execute format('grant select on table public.%I to authenticated', t);
    if t <> 'business_metrics' then
      execute format('alter table public.%I enable row level security', t);
      execute format('alter table public.%I force row level security', t);
    end if;
  end loop;
end
$$;

grant insert, update on public.locations, public.vehicles, public.bottle_types, public.customers,
  public.customer_billing, public.routes, public.deliveries, public.delivery_items to authenticated;
grant update (name, slug, timezone, currency, regulatory_regime, settings) on public.organizations to authenticated;
grant update (full_name, phone) on public.profiles to authenticated;
grant update (status, message) on public.scan_exceptions to authenticated;
-- Cylinders: a new row may carry its identity and starting state (the registration trigger
-- validates it as a `register` event). Afterwards clients edit descriptive and physical columns
-- only (DOMAIN.md §3.2): status, custody, rental dates, the block flag and the requalification
-- dates follow events, and the scan identity (barcode, RFID tag) and container type are not
-- edited in place.
grant insert (id, bottle_type_id, serial_number, barcode_number, rfid_tag, product_code, description, size,
              type, gas_type, status, fill_state, current_location_id, current_customer_id, location,
              last_inspection_date, next_inspection_date, purchase_date, purchase_price, current_value,
              condition, notes, images, spec, service_pressure, pressure_unit, material, water_capacity_l,
              tare_weight_kg, manufacturer, manufacture_date, valve_outlet, star_eligible, end_of_life_date,
              ownership, owner_customer_id)
  on public.bottles to authenticated;
grant update (bottle_type_id, serial_number, description, size, gas_type, location, purchase_date,
              purchase_price, current_value, condition, notes, images, spec, service_pressure, pressure_unit,
              material, water_capacity_l, tare_weight_kg, manufacturer, manufacture_date, valve_outlet,
              star_eligible, end_of_life_date)
  on public.bottles to authenticated;

-- organizations: members read their own; the owner edits name, slug, timezone and settings, an
-- admin the settings only (DOMAIN.md §9; app.admins_edit_settings_only below, as RLS cannot
-- compare old and new values). Plan columns belong to billing (app.protect_plan_columns).
-- Creation goes through create_organization.
create policy "members read their organization" on public.organizations
  for select to authenticated
  using (id = (select app.current_org_id()));
create policy "owners edit the organization, admins its settings" on public.organizations
  for update to authenticated
  using (id = (select app.current_org_id()) and (select app.has_role('owner', 'admin')))
  with check (id = (select app.current_org_id()) and (select app.has_role('owner', 'admin')));

-- profiles: colleagues are visible; each user edits their own name and phone. Roles and
-- activation change through set_member_role / deactivate_member.
create policy "members read colleagues" on public.profiles
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "users edit their own profile" on public.profiles
  for update to authenticated
  using (user_id = (select auth.uid()) and organization_id = (select app.current_org_id()))
  with check (user_id = (select auth.uid()) and organization_id = (select app.current_org_id()));

create policy "owners and admins read invitations" on public.org_invitations
  for select to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin')));

-- Reference data of the organization: everyone reads, the office writes.
create policy "members read locations" on public.locations
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "office adds locations" on public.locations
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits locations" on public.locations
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

create policy "members read vehicles" on public.vehicles
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "office adds vehicles" on public.vehicles
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits vehicles" on public.vehicles
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

create policy "members read products" on public.bottle_types
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "office and plant add products" on public.bottle_types
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager', 'plant')) and (select app.org_can_write()));
create policy "office and plant edit products" on public.bottle_types
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager', 'plant')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager', 'plant')) and (select app.org_can_write()));

-- The state machine's reference rows: readable by every signed-in user, written by migrations.
create policy "signed-in users read transitions" on public.bottle_status_transitions
  for select to authenticated
  using (true);

-- bottles: everyone in the organization reads; office and plant register and edit descriptive
-- columns (column grants above). No DELETE: soft_delete.
create policy "members read cylinders" on public.bottles
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "office and plant register cylinders" on public.bottles
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager', 'plant')) and (select app.org_can_write()));
create policy "office and plant edit cylinders" on public.bottles
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager', 'plant')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager', 'plant')) and (select app.org_can_write()));

-- customers: every role reads names and addresses (soft-deleted rows included: hiding them in
-- the SELECT policy would break RETURNING on updates); the office writes. No DELETE.
create policy "members read customers" on public.customers
  for select to authenticated
  using (organization_id = (select app.current_org_id()));
create policy "office adds customers" on public.customers
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits customers" on public.customers
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

-- Financial terms: billing roles only (drivers and plant see nothing).
create policy "billing roles read terms" on public.customer_billing
  for select to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager', 'viewer')));
create policy "office adds terms" on public.customer_billing
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits terms" on public.customer_billing
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

-- Routes and deliveries: a driver sees only their own; the office plans and assigns. Drivers
-- change status and proof only through complete_delivery / fail_delivery. Join-free, so realtime
-- can check them cheaply per subscriber.
create policy "office and assigned driver read routes" on public.routes
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.current_role()) <> 'driver' or driver_id = (select auth.uid())));
create policy "office plans routes" on public.routes
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits routes" on public.routes
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

create policy "office and assigned driver read deliveries" on public.deliveries
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.current_role()) <> 'driver' or driver_id = (select auth.uid())));
create policy "office plans deliveries" on public.deliveries
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits deliveries" on public.deliveries
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

-- Order lines follow their delivery: a driver sees the lines of their own stops.
create policy "lines of visible deliveries" on public.delivery_items
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.current_role()) <> 'driver'
              or delivery_id in (select d.id from public.deliveries d where d.driver_id = (select auth.uid()))));
create policy "office adds lines" on public.delivery_items
  for insert to authenticated
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));
create policy "office edits lines" on public.delivery_items
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id())
              and (select app.has_role('owner', 'admin', 'manager')) and (select app.org_can_write()));

-- The event log, custody and the ledger: read-only for clients. Drivers see the scans they made
-- and those on deliveries assigned to them; custody periods (which carry rates and amounts) are
-- not for drivers.
create policy "members read events" on public.bottle_events
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.current_role()) <> 'driver'
              or actor_user_id = (select auth.uid())
              or delivery_id in (select d.id from public.deliveries d where d.driver_id = (select auth.uid()))));
create policy "office, plant and viewers read custody" on public.rentals
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and (select app.has_role('owner', 'admin', 'manager', 'plant', 'viewer')));
create policy "members read the ledger" on public.balance_adjustments
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.current_role()) <> 'driver'
              or actor_user_id = (select auth.uid())
              or delivery_id in (select d.id from public.deliveries d where d.driver_id = (select auth.uid()))));

-- Scan exceptions: the office reads and resolves; everyone sees the ones they caused.
create policy "office and authors read exceptions" on public.scan_exceptions
  for select to authenticated
  using (organization_id = (select app.current_org_id())
         and ((select app.has_role('owner', 'admin', 'manager')) or actor_user_id = (select auth.uid())));
create policy "office resolves exceptions" on public.scan_exceptions
  for update to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')))
  with check (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin', 'manager')));

create policy "owners and admins read the audit log" on public.audit_logs
  for select to authenticated
  using (organization_id = (select app.current_org_id()) and (select app.has_role('owner', 'admin')));

-- Resolving an exception stamps who and when.
create function app.scan_exceptions_resolved() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if new.status is distinct from old.status then
    new.resolved_by := case when new.status = 'open' then null else auth.uid() end;
    new.resolved_at := case when new.status = 'open' then null else now() end;
  end if;
  return new;
end
$$;
create trigger scan_exceptions_resolved before update on public.scan_exceptions
  for each row execute function app.scan_exceptions_resolved();

-- An admin changes an organization's settings and nothing else of it. Applies to API callers
-- (current_user authenticated); SECURITY DEFINER RPCs and the service role check for themselves.
create function app.admins_edit_settings_only() returns trigger
language plpgsql set search_path = ''
as $$
begin
  if current_user = 'authenticated' and (select app.current_role()) is distinct from 'owner'
     and (to_jsonb(new) - 'settings' - 'updated_at') is distinct from (to_jsonb(old) - 'settings' - 'updated_at') then
    raise exception 'only the owner changes the organization''s name, slug, timezone, currency or regime'
      using errcode = '42501', hint = 'Admins may change settings';
  end if;
  return new;
end
$$;
create trigger organizations_admin_settings_only before update on public.organizations
  for each row execute function app.admins_edit_settings_only();

-- Trigger functions are nobody's to call (new functions are executable by PUBLIC by default).
revoke execute on function app.admins_edit_settings_only(), app.scan_exceptions_resolved() from public;
