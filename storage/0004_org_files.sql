-- The gas business's files (DOMAIN.md): a private bucket `org-files` whose first folder is the
-- caller's organization. Members read their organization's files; drivers write delivery proof
-- under {org}/deliveries/{delivery_id}/ and office/plant roles write anywhere in their
-- organization; proof is evidence, so there is no UPDATE policy (nothing is ever overwritten,
-- upsert and move are refused); only admins and owners delete.
--
-- The organization and role come from the JWT, not from the domain tables: the custom
-- access-token hook adds top-level `organization_id` / `org_role` claims, and service-role tools
-- may set them in `app_metadata` (which users cannot edit). `user_metadata` is user-editable and
-- is never read.

-- The caller's organization id from the token, or null.
create function storage.jwt_org_id() returns text
language sql stable
as $$
  select nullif(coalesce(
    auth.jwt() ->> 'organization_id',
    auth.jwt() -> 'app_metadata' ->> 'organization_id'
  ), '')
$$;

-- The caller's role inside that organization (owner, admin, manager, driver, plant, viewer).
create function storage.jwt_org_role() returns text
language sql stable
as $$
  select nullif(coalesce(
    auth.jwt() ->> 'org_role',
    auth.jwt() -> 'app_metadata' ->> 'org_role'
  ), '')
$$;

alter function storage.jwt_org_id() owner to supabase_storage_admin;
alter function storage.jwt_org_role() owner to supabase_storage_admin;
grant execute on function storage.jwt_org_id(), storage.jwt_org_role()
  to anon, authenticated, service_role;

insert into storage.buckets (id, name, public)
values ('org-files', 'org-files', false)
on conflict (id) do nothing;

create policy "org-files: members read their organization's files"
  on storage.objects for select to authenticated
  using (
    bucket_id = 'org-files'
    and (storage.foldername(name))[1] = (select storage.jwt_org_id())
    and (select storage.jwt_org_role()) in ('owner', 'admin', 'manager', 'driver', 'plant', 'viewer')
  );

create policy "org-files: staff and drivers add files"
  on storage.objects for insert to authenticated
  with check (
    bucket_id = 'org-files'
    and (storage.foldername(name))[1] = (select storage.jwt_org_id())
    and (
      (select storage.jwt_org_role()) in ('owner', 'admin', 'manager', 'plant')
      -- A driver only adds delivery proof: {org}/deliveries/{delivery_id}/{file}.
      or (
        (select storage.jwt_org_role()) = 'driver'
        and (storage.foldername(name))[2] = 'deliveries'
        and coalesce((storage.foldername(name))[3], '') <> ''
      )
    )
  );

create policy "org-files: admins delete"
  on storage.objects for delete to authenticated
  using (
    bucket_id = 'org-files'
    and (storage.foldername(name))[1] = (select storage.jwt_org_id())
    and (select storage.jwt_org_role()) in ('owner', 'admin')
  );
