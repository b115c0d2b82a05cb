-- org-files after the cylinder domain landed (schema/01xx): the caller's organization and role
-- come from the domain's truth, the active profile of auth.uid() (as app.current_org_id() and
-- app.current_role() read it), so a role change or a deactivation applies to files at once
-- instead of when the token expires. Token claims (the access-token hook's top-level
-- `organization_id` / `org_role`, or `app_metadata`) are used only for callers who have no
-- profile at all, such as service tools' tokens. A caller whose profile exists but is inactive
-- gets nothing, whatever the token says. `user_metadata` is user-editable and is never read.
--
-- The policies of storage/0004 call these two functions, so they change with them.

-- The caller's `sub` when it is a uuid; other subjects cannot have a profile (and must not
-- make auth.uid()'s cast fail inside a policy).
create function storage.caller_uuid() returns uuid
language sql stable
as $$
  select case
    when s.sub ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then s.sub::uuid
  end
  from (
    select coalesce(
      nullif(current_setting('request.jwt.claim.sub', true), ''),
      auth.jwt() ->> 'sub'
    ) as sub
  ) s
$$;

-- The caller's profile, if any: (organization id, role, active). SECURITY DEFINER, owned by the
-- migrating role like the domain's app.* helpers, so the lookup is not itself subject to the
-- profiles policies.
create function storage.caller_profile(out organization_id uuid, out role text, out is_active boolean)
language sql stable security definer set search_path = ''
as $$
  select p.organization_id, p.role, p.is_active
  from public.profiles p
  where p.user_id = storage.caller_uuid()
$$;

create or replace function storage.jwt_org_id() returns text
language sql stable
as $$
  select case
    when p.organization_id is not null then
      case when p.is_active then p.organization_id::text end
    else nullif(coalesce(
      auth.jwt() ->> 'organization_id',
      auth.jwt() -> 'app_metadata' ->> 'organization_id'
    ), '')
  end
  from storage.caller_profile() p
$$;

create or replace function storage.jwt_org_role() returns text
language sql stable
as $$
  select case
    when p.organization_id is not null then
      case when p.is_active then p.role end
    else nullif(coalesce(
      auth.jwt() ->> 'org_role',
      auth.jwt() -> 'app_metadata' ->> 'org_role'
    ), '')
  end
  from storage.caller_profile() p
$$;

alter function storage.caller_uuid() owner to supabase_storage_admin;
grant execute on function storage.caller_uuid() to anon, authenticated, service_role;
-- The org-files policies apply to `authenticated` only, so anon never needs the profile lookup
-- (and a SECURITY DEFINER function stays out of anon's reach, as the policy lint requires).
revoke execute on function storage.caller_profile() from public, anon;
grant execute on function storage.caller_profile() to authenticated, service_role;

-- Delivery proof goes to a delivery that exists: {org}/deliveries/{delivery_id}/… names a
-- delivery of the caller's organization that is not deleted, and a driver's own stop
-- (deliveries.driver_id, as the deliveries policies read it). Without this a driver could write
-- under any made-up folder. The id is cast only once it looks like a uuid, so another folder name
-- is a refusal, not a cast error. SECURITY DEFINER (owned by the migrating role, like
-- caller_profile) so the lookup does not depend on what the deliveries policies let the caller
-- read.
create function storage.delivery_takes_proof(folders text[]) returns boolean
language sql stable security definer set search_path = ''
as $$
  select coalesce(folders[2] = 'deliveries', false) and exists (
    select 1
    from public.deliveries d
    where d.id = case
        when folders[3] ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
        then folders[3]::uuid
      end
      and d.organization_id::text = storage.jwt_org_id()
      and d.deleted_at is null
      and (storage.jwt_org_role() is distinct from 'driver' or d.driver_id = storage.caller_uuid())
  )
$$;
revoke execute on function storage.delivery_takes_proof(text[]) from public, anon;
grant execute on function storage.delivery_takes_proof(text[]) to authenticated, service_role;

-- The write policy of storage/0004 with that rule: anything under {org}/deliveries/ needs a
-- delivery that takes proof (for every role); elsewhere in the organization the office and plant
-- roles write, drivers do not.
drop policy "org-files: staff and drivers add files" on storage.objects;
create policy "org-files: staff and drivers add files"
  on storage.objects for insert to authenticated
  with check (
    bucket_id = 'org-files'
    and (storage.foldername(name))[1] = (select storage.jwt_org_id())
    and case
      when (storage.foldername(name))[2] = 'deliveries' then
        (select storage.jwt_org_role()) in ('owner', 'admin', 'manager', 'plant', 'driver')
        and storage.delivery_takes_proof(storage.foldername(name))
      else (select storage.jwt_org_role()) in ('owner', 'admin', 'manager', 'plant')
    end
  );
