-- The `storage` schema, owned by its admin role as on Supabase. Buckets, objects and their helper
-- functions are added by later storage migrations.
create schema if not exists storage authorization supabase_storage_admin;
grant usage on schema storage to anon, authenticated, service_role;
