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
