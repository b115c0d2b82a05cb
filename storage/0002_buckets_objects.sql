-- Supabase Storage's tables, with its table and column names, so policies and seed files written
-- for Supabase load unchanged. Owned by supabase_storage_admin as on Supabase; the API roles get
-- table privileges and row-level security decides (no policy = nothing allowed).

create type storage.buckettype as enum ('STANDARD', 'ANALYTICS', 'VECTOR');
alter type storage.buckettype owner to supabase_storage_admin;

create table storage.buckets (
  id text primary key,
  name text not null,
  -- Deprecated by Supabase in favour of owner_id (a `sub` need not be a uuid), kept for old SQL.
  owner uuid,
  owner_id text,
  public boolean not null default false,
  avif_autodetection boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  type storage.buckettype not null default 'STANDARD',
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  constraint buckets_name_length check (char_length(name) between 1 and 100)
);
create unique index bname on storage.buckets (name);

create table storage.objects (
  id uuid primary key default gen_random_uuid(),
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,
  owner_id text,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  -- System metadata: eTag, size, mimetype, cacheControl, lastModified, contentLength,
  -- httpStatusCode (the keys Supabase Storage writes and clients read).
  metadata jsonb,
  user_metadata jsonb,
  -- A new value on every write; the blob key includes it, so an overwrite never touches the
  -- bytes a concurrent reader is streaming.
  version text,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);

alter table storage.buckets owner to supabase_storage_admin;
alter table storage.objects owner to supabase_storage_admin;

alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

grant all on storage.buckets, storage.objects to anon, authenticated, service_role;

create function storage.update_updated_at_column() returns trigger
language plpgsql
as $$
begin
  new.updated_at = now();
  return new;
end
$$;
alter function storage.update_updated_at_column() owner to supabase_storage_admin;

create trigger update_objects_updated_at
  before update on storage.objects
  for each row execute function storage.update_updated_at_column();
create trigger update_buckets_updated_at
  before update on storage.buckets
  for each row execute function storage.update_updated_at_column();

-- The delete guard: deleting rows in SQL would orphan their files, so a DELETE on these tables
-- fails unless the Storage API set `storage.allow_delete_query` for its own request.
create function storage.protect_delete() returns trigger
language plpgsql
as $$
begin
  if coalesce(current_setting('storage.allow_delete_query', true), 'false') <> 'true' then
    raise exception 'Direct deletion from storage tables is not allowed. Use the Storage API instead.'
      using hint = 'This prevents accidental data loss from orphaned objects.',
            errcode = '42501';
  end if;
  return null;
end
$$;
alter function storage.protect_delete() owner to supabase_storage_admin;

create trigger protect_buckets_delete
  before delete on storage.buckets
  for each statement execute function storage.protect_delete();
create trigger protect_objects_delete
  before delete on storage.objects
  for each statement execute function storage.protect_delete();
