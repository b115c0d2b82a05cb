-- Two small gas distributors for the domain SQL tests (domain_limits.rs, domain_sql.rs).
--   organizations  X = 10000000-0000-4000-8000-000000000000, Y = 20000000-…
--   users          {1|2}0000000-0000-4000-8000-00000000000{1 owner, 2 admin, 3 manager, 4 driver}
-- No plan limits: each test sets the ones it races against.
insert into public.organizations (id, name, slug, subscription_status)
values ('10000000-0000-4000-8000-000000000000', 'Xeno Gas', 'xeno', 'active'),
       ('20000000-0000-4000-8000-000000000000', 'Yarrow Gas', 'yarrow', 'active');

insert into auth.users (id, aud, role, email, email_confirmed_at)
select (o.digit || '0000000-0000-4000-8000-00000000000' || r.n)::uuid, 'authenticated', 'authenticated',
       r.role || '@' || o.slug || '.test', now()
from (values ('1', 'xeno'), ('2', 'yarrow')) as o(digit, slug)
cross join (values (1, 'owner'), (2, 'admin'), (3, 'manager'), (4, 'driver')) as r(n, role);

insert into public.profiles (user_id, organization_id, full_name, role)
select (o.digit || '0000000-0000-4000-8000-00000000000' || r.n)::uuid,
       (o.digit || '0000000-0000-4000-8000-000000000000')::uuid, initcap(r.role) || ' ' || o.slug, r.role
from (values ('1', 'xeno'), ('2', 'yarrow')) as o(digit, slug)
cross join (values (1, 'owner'), (2, 'admin'), (3, 'manager'), (4, 'driver')) as r(n, role);

insert into public.locations (organization_id, kind, name)
select o.id, 'branch', 'Main depot' from public.organizations o where o.slug in ('xeno', 'yarrow');
insert into public.bottle_types (organization_id, product_code, description, gas_type)
select o.id, 'OX200', 'Oxygen 200 cu ft', 'oxygen' from public.organizations o where o.slug in ('xeno', 'yarrow');
insert into public.customers (organization_id, name)
select o.id, 'Weld Co' from public.organizations o where o.slug in ('xeno', 'yarrow');
