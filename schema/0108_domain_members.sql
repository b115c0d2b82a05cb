-- Gas-cylinder domain, part 9: organizations and membership (one organization per user), and the
-- custom access-token hook that adds the caller's organization and role to their JWT.

-- Any signed-in user without an organization creates one and becomes its owner; a first depot
-- is created so cylinders have somewhere to be.
create function public.create_organization(p_name text, p_slug text)
returns public.organizations
language plpgsql security definer set search_path = ''
as $$
declare
  me uuid := auth.uid();
  org public.organizations;
  display_name text;
begin
  if me is null or not exists (select 1 from auth.users u where u.id = me) then
    raise exception 'sign in to create an organization' using errcode = '42501';
  end if;
  if exists (select 1 from public.profiles p where p.user_id = me) then
    perform app.http_error(409, 'already_member', 'you already belong to an organization');
  end if;
  if nullif(btrim(coalesce(p_name, '')), '') is null then
    raise exception 'p_name is required' using errcode = '22023';
  end if;
  if p_slug is null or p_slug !~ '^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$' then
    raise exception 'p_slug must be 3-63 lowercase letters, digits or dashes' using errcode = '22023';
  end if;
  if exists (select 1 from public.organizations o where o.slug = p_slug) then
    perform app.http_error(409, 'slug_taken', format('the slug %s is taken', p_slug));
  end if;
  insert into public.organizations (name, slug) values (btrim(p_name), p_slug) returning * into org;
  select coalesce(u.raw_user_meta_data ->> 'full_name', u.email) into display_name
  from auth.users u where u.id = me;
  insert into public.profiles (user_id, organization_id, full_name, role) values (me, org.id, display_name, 'owner');
  insert into public.locations (organization_id, kind, name) values (org.id, 'branch', 'Main depot');
  return org;
end
$$;

-- Invitations: the token is returned once (the app sends it); only its SHA-256 is stored.
create function public.invite_member(p_email text, p_role text)
returns jsonb
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin');
  token text := replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', '');
  invitation public.org_invitations;
  was_expired boolean;
begin
  perform app.require_writable();
  if p_role is null or p_role not in ('admin', 'manager', 'driver', 'plant', 'viewer') then
    raise exception 'p_role is one of admin, manager, driver, plant, viewer' using errcode = '22023';
  end if;
  if p_email is null or p_email !~ '^[^@\s]+@[^@\s]+$' then
    raise exception 'p_email is not an email address' using errcode = '22023';
  end if;
  if exists (select 1 from auth.users u join public.profiles p on p.user_id = u.id
             where lower(u.email) = lower(p_email)) then
    perform app.http_error(409, 'already_member', format('%s already belongs to an organization', p_email));
  end if;
  select i.expires_at <= now() into was_expired from public.org_invitations i
  where i.organization_id = org and i.email = p_email::extensions.citext and i.accepted_at is null
  for update;
  update public.org_invitations i
  set role = p_role, token_hash = encode(sha256(convert_to(token, 'UTF8')), 'hex'),
      invited_by = auth.uid(), expires_at = now() + interval '7 days'
  where i.organization_id = org and i.email = p_email::extensions.citext and i.accepted_at is null
  returning * into invitation;
  if found then
    -- An expired invitation did not count toward max_users; renewed, it does again.
    if was_expired then
      perform app.enforce_limit(org, 'max_users', 1);
    end if;
  else
    insert into public.org_invitations (organization_id, email, role, token_hash, invited_by)
    values (org, p_email, p_role, encode(sha256(convert_to(token, 'UTF8')), 'hex'), auth.uid())
    returning * into invitation;
  end if;
  return jsonb_build_object('id', invitation.id, 'email', invitation.email, 'role', invitation.role,
    'expires_at', invitation.expires_at, 'token', token);
end
$$;

-- The invited user (signed in with the invited email) joins with the invited role.
create function public.accept_invitation(p_token text)
returns public.profiles
language plpgsql security definer set search_path = ''
as $$
declare
  me uuid := auth.uid();
  my_email text;
  invitation public.org_invitations;
  profile public.profiles;
begin
  select u.email into my_email from auth.users u where u.id = me;
  if me is null or my_email is null then
    raise exception 'sign in to accept an invitation' using errcode = '42501';
  end if;
  select * into invitation from public.org_invitations i
  where i.token_hash = encode(sha256(convert_to(coalesce(p_token, ''), 'UTF8')), 'hex')
    and i.accepted_at is null and i.expires_at > now()
  for update;
  if not found or lower(invitation.email::text) <> lower(my_email) then
    perform app.http_error(404, 'invitation_not_found', 'no pending invitation for you with this token');
  end if;
  if exists (select 1 from public.profiles p where p.user_id = me) then
    perform app.http_error(409, 'already_member', 'you already belong to an organization');
  end if;
  update public.org_invitations i set accepted_at = now() where i.id = invitation.id;
  insert into public.profiles (user_id, organization_id, full_name, role)
  select me, invitation.organization_id, coalesce(u.raw_user_meta_data ->> 'full_name', u.email), invitation.role
  from auth.users u where u.id = me
  returning * into profile;
  return profile;
end
$$;

-- Owners and admins manage roles; an admin never grants, changes or removes an owner.
create function app.managed_member(p_org uuid, p_user_id uuid) returns public.profiles
language plpgsql security definer set search_path = ''
as $$
declare
  target public.profiles;
begin
  select * into target from public.profiles p
  where p.organization_id = p_org and p.user_id = p_user_id
  for update;
  if not found then
    perform app.not_found('member', p_user_id);
  end if;
  if target.role = 'owner' and app.current_role() <> 'owner' then
    raise exception 'only an owner changes an owner' using errcode = '42501';
  end if;
  return target;
end
$$;

create function public.set_member_role(p_user_id uuid, p_role text)
returns public.profiles
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin');
  target public.profiles;
begin
  perform app.require_writable();
  if p_role is null or p_role not in ('owner', 'admin', 'manager', 'driver', 'plant', 'viewer') then
    raise exception 'p_role is one of owner, admin, manager, driver, plant, viewer' using errcode = '22023';
  end if;
  target := app.managed_member(org, p_user_id);
  if p_role = 'owner' and app.current_role() <> 'owner' then
    raise exception 'only an owner makes someone an owner' using errcode = '42501';
  end if;
  update public.profiles p set role = p_role where p.id = target.id returning * into target;
  return target;
end
$$;

create function public.deactivate_member(p_user_id uuid)
returns public.profiles
language plpgsql security definer set search_path = ''
as $$
declare
  org uuid := app.require_role('owner', 'admin');
  target public.profiles;
begin
  target := app.managed_member(org, p_user_id);
  update public.profiles p set is_active = false where p.id = target.id returning * into target;
  return target;
end
$$;

-- Auth hook (configure `auth.custom_access_token_hook = "app.custom_access_token_hook"`): adds
-- `organization_id` and `org_role` to access tokens, as Supabase's custom-claims recipe does.
-- Policies do not depend on it (they read profiles, so a role change applies at once); it lets
-- apps and the org-files storage policies know the organization without a query.
create function app.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable security definer set search_path = ''
as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  member public.profiles;
begin
  select * into member from public.profiles p
  where p.user_id = (event ->> 'user_id')::uuid and p.is_active;
  if found then
    claims := claims || jsonb_build_object('organization_id', member.organization_id, 'org_role', member.role);
  else
    claims := claims - 'organization_id' - 'org_role';
  end if;
  return jsonb_build_object('claims', claims);
end
$$;

-- Execution rights. The public RPCs are for signed-in users only, never anon. The `app` schema's
-- internals are SECURITY DEFINER functions that take an organization id and trust it
-- (scan_batch, record_event, replay_bottle, write_audit, store_bottle, enforce_limit, …): only the
-- RPCs that checked the caller first, and triggers, call them. So `authenticated` runs just the
-- helpers its policies and column defaults call; functions get EXECUTE for PUBLIC by default,
-- hence the sweep over the whole schema after the last `app` function exists.
do $$
declare
  fn regprocedure;
begin
  for fn in
    select p.oid::regprocedure from pg_proc p
    join pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'public' and p.prosecdef
  loop
    execute format('revoke execute on function %s from public, anon', fn);
    execute format('grant execute on function %s to authenticated, service_role', fn);
  end loop;
end
$$;
revoke execute on function public.aging_report(int) from public, anon;
grant execute on function public.aging_report(int) to authenticated, service_role;

revoke execute on all functions in schema app from public, anon, authenticated;
grant execute on function app.current_org_id(), app.current_role(), app.has_role(text[]), app.org_can_write()
  to authenticated;
grant execute on all functions in schema app to service_role;
revoke execute on function app.custom_access_token_hook(jsonb) from service_role;
-- The auth server runs the hook as supabase_auth_admin, which needs the schema as well as the
-- function: without USAGE every sign-in fails with "permission denied for schema app".
grant usage on schema app to supabase_auth_admin;
grant execute on function app.custom_access_token_hook(jsonb) to supabase_auth_admin;
