-- Gas-cylinder domain, part 7: the audit trail of master data and the business_metrics view.

create table public.audit_logs (
  id bigint generated always as identity primary key,
  organization_id uuid not null references public.organizations (id),
  actor_user_id uuid,
  actor_role text,
  table_name text not null,
  row_id uuid,
  action text not null check (action in ('insert', 'update', 'delete', 'soft_delete', 'restore', 'rpc')),
  changes jsonb not null default '{}'::jsonb,
  request_id text,
  occurred_at timestamptz not null default now()
);
create index audit_logs_recent on public.audit_logs (organization_id, occurred_at desc);
create index audit_logs_row on public.audit_logs (organization_id, table_name, row_id);
alter table public.audit_logs set (autovacuum_vacuum_insert_scale_factor = 0.05);
create trigger audit_logs_org_fixed before update on public.audit_logs
  for each row execute function app.forbid_org_change();

-- The id the gateway gave this request, when there is one.
create function app.request_id() returns text
language sql stable set search_path = ''
as $$
  select nullif(current_setting('request.headers', true), '')::jsonb ->> 'x-request-id'
$$;

create function app.write_audit(p_org uuid, p_table text, p_row uuid, p_action text, p_changes jsonb)
returns void
language sql security definer set search_path = ''
as $$
  insert into public.audit_logs (organization_id, actor_user_id, actor_role, table_name, row_id, action,
                                 changes, request_id)
  values (p_org, auth.uid(), coalesce(app.current_role(), auth.role(), current_user), p_table, p_row,
          p_action, coalesce(p_changes, '{}'::jsonb), app.request_id())
$$;

-- One generic AFTER trigger. TG_ARGV[0] lists columns that are not worth auditing (derived state
-- that the event log already records); an update touching only those writes nothing.
create function app.audit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  row_data jsonb := coalesce(new_row, old_row);
  ignored text[] := coalesce(string_to_array(tg_argv[0], ','), '{}'::text[]) || array['updated_at'];
  changes jsonb;
  action text := lower(tg_op);
begin
  if tg_op = 'UPDATE' then
    select jsonb_object_agg(n.key, jsonb_build_object('old', old_row -> n.key, 'new', n.value))
      into changes
      from jsonb_each(new_row) n
      where not (n.key = any (ignored)) and n.value is distinct from old_row -> n.key;
    if changes is null then
      return null;
    end if;
    if changes ? 'deleted_at' then
      action := case when new_row ->> 'deleted_at' is null then 'restore' else 'soft_delete' end;
    end if;
  elsif tg_op = 'INSERT' then
    select jsonb_object_agg(n.key, n.value) into changes
      from jsonb_each(new_row) n where not (n.key = any (ignored)) and n.value <> 'null'::jsonb;
  else
    changes := old_row;
  end if;
  perform app.write_audit(
    (case when tg_table_name = 'organizations' then row_data ->> 'id' else row_data ->> 'organization_id' end)::uuid,
    tg_table_name,
    (row_data ->> case when tg_table_name = 'customer_billing' then 'customer_id' else 'id' end)::uuid,
    action, changes);
  return null;
end
$$;

create trigger organizations_audit after insert or update on public.organizations
  for each row execute function app.audit();
create trigger profiles_audit after insert or update or delete on public.profiles
  for each row execute function app.audit();
create trigger customers_audit after insert or update or delete on public.customers
  for each row execute function app.audit('qb_synced_at');
create trigger customer_billing_audit after insert or update or delete on public.customer_billing
  for each row execute function app.audit();
create trigger bottle_types_audit after insert or update or delete on public.bottle_types
  for each row execute function app.audit();
create trigger locations_audit after insert or update or delete on public.locations
  for each row execute function app.audit();
create trigger vehicles_audit after insert or update or delete on public.vehicles
  for each row execute function app.audit();
-- Cylinders: registration and movements are in bottle_events; only descriptive edits and
-- deletions are audited here.
create trigger bottles_audit after update or delete on public.bottles
  for each row execute function app.audit(
    'status,fill_state,current_location_id,current_vehicle_id,current_customer_id,custody_since,'
    'last_event_id,last_event_at,last_filled_at,customer_name,rental_start_date,rental_end_date');

-- Dashboard counts, one row per visible organization. security_invoker: the caller's policies
-- apply to every table read, so a tenant only ever counts its own rows. Office roles only.
create view public.business_metrics with (security_invoker = true) as
select
  o.id as organization_id,
  o.name as organization_name,
  coalesce(s.active, 0) as bottles_active,
  coalesce(s.at_customer, 0) as bottles_at_customer,
  coalesce(s.full_count, 0) as bottles_full,
  coalesce(s.empty_count, 0) as bottles_empty,
  coalesce(s.on_truck, 0) as bottles_on_truck,
  coalesce(s.maintenance, 0) as bottles_maintenance,
  coalesce(s.lost, 0) as bottles_lost,
  (select count(*) from public.bottles b
   where b.organization_id = o.id and b.deleted_at is null and b.status not in ('retired', 'condemned')
     and b.next_inspection_date < current_date) as requal_overdue,
  (select count(*) from public.bottles b
   where b.organization_id = o.id and b.deleted_at is null and b.status not in ('retired', 'condemned')
     and b.next_inspection_date >= current_date and b.next_inspection_date < current_date + 30) as requal_due_30d,
  (select count(*) from public.bottles b
   where b.organization_id = o.id and b.status = 'at_customer'
     and b.last_event_at < now() - interval '90 days') as at_customer_over_90d,
  (select count(*) from public.customers c
   where c.organization_id = o.id and c.status = 'active' and c.deleted_at is null) as customers_active,
  (select count(*) from public.rentals r
   where r.organization_id = o.id and r.rental_end_date is null and r.status = 'active') as rentals_active,
  round(100.0 * coalesce(s.at_customer, 0) / nullif(s.active, 0), 1) as utilization_pct
from public.organizations o
left join lateral (
  select
    count(*) filter (where b.status not in ('retired', 'condemned', 'lost')) as active,
    count(*) filter (where b.status = 'at_customer') as at_customer,
    count(*) filter (where b.status = 'full') as full_count,
    count(*) filter (where b.status = 'empty') as empty_count,
    count(*) filter (where b.status = 'on_truck') as on_truck,
    count(*) filter (where b.status = 'maintenance') as maintenance,
    count(*) filter (where b.status = 'lost') as lost
  from public.bottles b
  where b.organization_id = o.id and b.deleted_at is null
) s on true
where (select app.has_role('owner', 'admin', 'manager', 'viewer'));
