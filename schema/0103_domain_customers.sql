-- Gas-cylinder domain, part 4: customers and their billing terms. The seed's mixed-case
-- "CustomerListID" (the QuickBooks Desktop ListID) is kept exactly. Financial fields live in
-- customer_billing, whose policies admit only billing roles, so drivers never see them.

create table public.customers (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  "CustomerListID" text,
  name text not null check (length(btrim(name)) > 0),
  email text,
  phone text,
  address text,
  customer_type text not null default 'other' check (customer_type in (
    'industrial', 'medical', 'welding', 'beverage', 'lab', 'retail', 'residential', 'other')),
  status text not null default 'active' check (status in ('prospect', 'active', 'on_hold', 'inactive')),
  account_number text,
  parent_customer_id uuid,
  bill_with_parent boolean not null default false,
  billing_address jsonb,
  shipping_address jsonb,
  lat double precision check (lat between -90 and 90),
  lng double precision check (lng between -180 and 180),
  delivery_instructions text,
  default_route_name text,
  qb_edit_sequence text,
  qb_full_name text,
  qb_time_modified timestamptz,
  qb_synced_at timestamptz,
  qb_is_active boolean,
  created_by uuid default auth.uid(),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  unique (organization_id, id),
  foreign key (organization_id, parent_customer_id) references public.customers (organization_id, id),
  check (parent_customer_id is null or parent_customer_id <> id)
);

create unique index customers_list_id on public.customers (organization_id, "CustomerListID")
  where "CustomerListID" is not null and deleted_at is null;
create unique index customers_account_number on public.customers (organization_id, account_number)
  where account_number is not null and deleted_at is null;
create index customers_status on public.customers (organization_id, status);
create index customers_parent on public.customers (organization_id, parent_customer_id)
  where parent_customer_id is not null;
create index customers_email on public.customers (organization_id, lower(email));
create index customers_name_trgm on public.customers using gin (name extensions.gin_trgm_ops);
create index customers_name on public.customers (organization_id, name);

create table public.customer_billing (
  customer_id uuid primary key,
  organization_id uuid not null default app.current_org_id() references public.organizations (id),
  credit_limit numeric(12, 2) check (credit_limit >= 0),
  payment_terms text,
  payment_terms_days int check (payment_terms_days >= 0),
  tax_exempt boolean not null default false,
  on_credit_hold boolean not null default false,
  rate_bracket_id uuid,
  rental_method_override text check (rental_method_override in (
    'daily', 'monthly_end', 'monthly_peak', 'monthly_prorated', 'demurrage')),
  demurrage_free_days int check (demurrage_free_days >= 0),
  min_rental_charge numeric(12, 2) check (min_rental_charge >= 0),
  billing_email text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (organization_id, customer_id),
  foreign key (organization_id, customer_id) references public.customers (organization_id, id)
);

-- The cylinders' links to customers (the customers table comes after bottles in this series).
alter table public.bottles
  add foreign key (organization_id, current_customer_id) references public.customers (organization_id, id),
  add foreign key (organization_id, owner_customer_id) references public.customers (organization_id, id);

create trigger customers_org_fixed before update on public.customers
  for each row execute function app.forbid_org_change();
create trigger customers_touch before update on public.customers
  for each row execute function app.touch_updated_at();
create trigger customer_billing_org_fixed before update on public.customer_billing
  for each row execute function app.forbid_org_change();
create trigger customer_billing_touch before update on public.customer_billing
  for each row execute function app.touch_updated_at();

-- A department's parent chain never loops back to itself.
create function app.customers_no_cycle() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.parent_customer_id is not null and exists (
    with recursive up(id, depth) as (
      select c.parent_customer_id, 1 from public.customers c
      where c.organization_id = new.organization_id and c.id = new.parent_customer_id
      union all
      select c.parent_customer_id, up.depth + 1 from public.customers c join up on c.id = up.id
      where c.organization_id = new.organization_id and up.depth < 64
    )
    select 1 from up where up.id = new.id
  ) then
    raise exception 'customer % cannot be its own ancestor', new.id using errcode = '23514';
  end if;
  return new;
end
$$;
create trigger customers_no_cycle before insert or update of parent_customer_id on public.customers
  for each row execute function app.customers_no_cycle();

-- Customer limits: statement-level on insert, per row when one comes back from deletion or
-- inactivity.
create function app.customers_limit() returns trigger
language plpgsql security definer set search_path = ''
as $$
declare
  org_row record;
begin
  for org_row in
    select organization_id, count(*) as n from new_rows
    where deleted_at is null and status <> 'inactive' group by organization_id
  loop
    perform app.enforce_limit(org_row.organization_id, 'max_customers', org_row.n::int);
  end loop;
  return null;
end
$$;
create trigger customers_limit after insert on public.customers
  referencing new table as new_rows for each statement execute function app.customers_limit();

create function app.customers_limit_on_restore() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  if new.deleted_at is null and new.status <> 'inactive'
     and (old.deleted_at is not null or old.status = 'inactive') then
    perform app.enforce_limit(new.organization_id, 'max_customers', 1);
  end if;
  return null;
end
$$;
create trigger customers_limit_restore after update of deleted_at, status on public.customers
  for each row execute function app.customers_limit_on_restore();

-- The seed's bottles.customer_name follows a rename.
create function app.customers_rename() returns trigger
language plpgsql security definer set search_path = ''
as $$
begin
  update public.bottles b set customer_name = new.name
  where b.organization_id = new.organization_id and b.current_customer_id = new.id
    and b.status = 'at_customer';
  return null;
end
$$;
create trigger customers_rename after update of name on public.customers
  for each row when (old.name is distinct from new.name) execute function app.customers_rename();
