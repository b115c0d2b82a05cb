-- Supabase Storage's SQL helpers for policies and listing. Policies written for Supabase call
-- storage.foldername(name), storage.filename(name) and storage.extension(name); they behave the
-- same here. All run as the invoker, so row-level security applies inside them.

-- Every path segment but the last: 'org/deliveries/7/sig.png' -> {org,deliveries,7}.
create function storage.foldername(name text) returns text[]
language sql immutable
as $$
  select (string_to_array(name, '/'))[1:array_length(string_to_array(name, '/'), 1) - 1]
$$;

-- The last path segment.
create function storage.filename(name text) returns text
language sql immutable
as $$
  select (string_to_array(name, '/'))[array_length(string_to_array(name, '/'), 1)]
$$;

-- The text after the last '.' of the file name (the whole file name when it has no dot).
create function storage.extension(name text) returns text
language sql immutable
as $$
  select reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

-- What the current Storage API request is doing (e.g. 'storage.object.upload'), so a policy can
-- tell an upload from an update.
create function storage.operation() returns text
language sql stable
as $$
  select current_setting('storage.operation', true)
$$;

-- One directory level under `prefix` (which ends in '/' or is empty): folder rows synthesised
-- from deeper names (id null) and file rows, names relative to the prefix. `search` filters the
-- next segment by a case-insensitive prefix. Sorting by name merges folders and files; sorting
-- by a time column puts folders first. `levels` is accepted for Supabase's signature only.
create function storage.search(
  prefix text,
  bucketname text,
  limits int default 100,
  levels int default 1,
  offsets int default 0,
  search text default '',
  sortcolumn text default 'name',
  sortorder text default 'asc'
) returns table (
  name text,
  id uuid,
  updated_at timestamptz,
  created_at timestamptz,
  last_accessed_at timestamptz,
  metadata jsonb
)
language sql stable
as $$
  with scoped as (
    select substr(o.name, length(search.prefix) + 1) as rest,
           o.id, o.updated_at, o.created_at, o.last_accessed_at, o.metadata
    from storage.objects o
    where o.bucket_id = search.bucketname
      and left(o.name, length(search.prefix)) = search.prefix
  ),
  entries as (
    select split_part(s.rest, '/', 1) as entry_name, null::uuid as entry_id,
           null::timestamptz as entry_updated, null::timestamptz as entry_created,
           null::timestamptz as entry_accessed, null::jsonb as entry_metadata, true as is_folder
    from scoped s
    where position('/' in s.rest) > 0
    group by split_part(s.rest, '/', 1)
    union all
    select s.rest, s.id, s.updated_at, s.created_at, s.last_accessed_at, s.metadata, false
    from scoped s
    where position('/' in s.rest) = 0
  ),
  filtered as (
    select e.*,
           case search.sortcolumn
             when 'updated_at' then e.entry_updated
             when 'created_at' then e.entry_created
             when 'last_accessed_at' then e.entry_accessed
           end as sort_time
    from entries e
    where coalesce(search.search, '') = ''
       or left(lower(e.entry_name), length(search.search)) = lower(search.search)
  )
  select f.entry_name, f.entry_id, f.entry_updated, f.entry_created, f.entry_accessed,
         f.entry_metadata
  from filtered f
  order by
    case when search.sortcolumn <> 'name' then f.is_folder end desc,
    case when search.sortcolumn = 'name' and lower(search.sortorder) = 'desc'
         then lower(f.entry_name) collate "C" end desc,
    case when search.sortcolumn = 'name' and lower(search.sortorder) <> 'desc'
         then lower(f.entry_name) collate "C" end asc,
    case when search.sortcolumn <> 'name' and lower(search.sortorder) = 'desc'
         then f.sort_time end desc nulls last,
    case when search.sortcolumn <> 'name' and lower(search.sortorder) <> 'desc'
         then f.sort_time end asc nulls first,
    f.entry_name collate "C"
  limit greatest(search.limits, 0)
  offset greatest(search.offsets, 0)
$$;

-- Total bytes stored per bucket (as Supabase's helper of the same name).
create function storage.get_size_by_bucket()
returns table (size bigint, bucket_id text)
language sql stable
as $$
  select sum((o.metadata ->> 'size')::bigint)::bigint as size, o.bucket_id
  from storage.objects o
  group by o.bucket_id
$$;

alter function storage.foldername(text) owner to supabase_storage_admin;
alter function storage.filename(text) owner to supabase_storage_admin;
alter function storage.extension(text) owner to supabase_storage_admin;
alter function storage.operation() owner to supabase_storage_admin;
alter function storage.search(text, text, int, int, int, text, text, text)
  owner to supabase_storage_admin;
alter function storage.get_size_by_bucket() owner to supabase_storage_admin;

grant execute on all functions in schema storage to anon, authenticated, service_role;
