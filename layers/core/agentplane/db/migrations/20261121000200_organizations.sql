-- Organizations and their members. Every organization-scoped table's policies go through
-- private.org_ids(min_role): the organizations the caller belongs to with at least that
-- role, computed once per statement (policies call it as `(select ...)`).

create table public.organizations (
  id uuid primary key default gen_random_uuid(),
  name text not null check (length(btrim(name)) between 1 and 200),
  slug text check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
  created_by uuid not null references auth.users (id),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create unique index organizations_slug_key on public.organizations (slug) where slug is not null;
create index organizations_created_by_idx on public.organizations (created_by);

create table public.organization_members (
  organization_id uuid not null references public.organizations (id) on delete cascade,
  user_id uuid not null references auth.users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (organization_id, user_id)
);
-- Membership look-ups by user drive every organization policy.
create index organization_members_user_id_idx on public.organization_members (user_id, organization_id, role);

create trigger organizations_set_updated_at before update on public.organizations
  for each row execute function private.set_updated_at();
create trigger organization_members_set_updated_at before update on public.organization_members
  for each row execute function private.set_updated_at();

create function private.org_ids(min_role text) returns uuid[]
  language sql stable security definer
  set search_path = ''
  as $$
    select coalesce(array_agg(m.organization_id), '{}'::uuid[])
    from public.organization_members m
    where m.user_id = (select auth.uid())
      and private.role_rank(m.role) >= private.role_rank(min_role)
  $$;
revoke all on function private.org_ids(text) from public;
grant execute on function private.org_ids(text) to authenticated;

-- The creator of an organization becomes its owner, in the same transaction.
create function private.add_creator_as_owner() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  insert into public.organization_members (organization_id, user_id, role)
  values (new.id, new.created_by, 'owner');
  return null;
end
$$;
revoke all on function private.add_creator_as_owner() from public;
create trigger organizations_add_creator_as_owner after insert on public.organizations
  for each row execute function private.add_creator_as_owner();

-- An organization always keeps at least one owner (unless the organization itself is
-- being deleted, which cascades to its members).
create function private.keep_last_owner() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  if old.role = 'owner'
     and (tg_op = 'DELETE' or new.role <> 'owner' or new.organization_id <> old.organization_id)
     and exists (select 1 from public.organizations o where o.id = old.organization_id)
     and not exists (
       select 1 from public.organization_members m
       where m.organization_id = old.organization_id
         and m.role = 'owner'
         and m.user_id <> old.user_id
     )
  then
    raise exception 'organization % would be left without an owner', old.organization_id
      using errcode = '23514', constraint = 'organization_members_last_owner';
  end if;
  if tg_op = 'DELETE' then
    return old;
  end if;
  return new;
end
$$;
revoke all on function private.keep_last_owner() from public;
create trigger organization_members_keep_last_owner
  before update or delete on public.organization_members
  for each row execute function private.keep_last_owner();

alter table public.organizations enable row level security;
alter table public.organizations force row level security;
alter table public.organization_members enable row level security;
alter table public.organization_members force row level security;

grant select on public.organizations, public.organization_members to anon;
grant select, insert, update, delete on public.organizations, public.organization_members
  to authenticated, service_role;

create policy "Members can view their organizations"
  on public.organizations for select to authenticated
  using (id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Authenticated users can create organizations they own"
  on public.organizations for insert to authenticated
  with check (created_by = (select auth.uid()));
create policy "Admins can update their organizations"
  on public.organizations for update to authenticated
  using (id = any ((select private.org_ids('admin'))::uuid[]))
  with check (id = any ((select private.org_ids('admin'))::uuid[]));
create policy "Owners can delete their organizations"
  on public.organizations for delete to authenticated
  using (id = any ((select private.org_ids('owner'))::uuid[]));
create policy "Server jobs can manage organizations"
  on public.organizations for all to service_role
  using (true) with check (true);

create policy "Members can view the members of their organizations"
  on public.organization_members for select to authenticated
  using (organization_id = any ((select private.org_ids('viewer'))::uuid[]));
create policy "Admins can add members; only owners can add owners"
  on public.organization_members for insert to authenticated
  with check (
    organization_id = any ((select private.org_ids('admin'))::uuid[])
    and (role <> 'owner' or organization_id = any ((select private.org_ids('owner'))::uuid[]))
  );
create policy "Admins can change roles; only owners can touch owners"
  on public.organization_members for update to authenticated
  using (
    organization_id = any ((select private.org_ids('admin'))::uuid[])
    and (role <> 'owner' or organization_id = any ((select private.org_ids('owner'))::uuid[]))
  )
  with check (
    organization_id = any ((select private.org_ids('admin'))::uuid[])
    and (role <> 'owner' or organization_id = any ((select private.org_ids('owner'))::uuid[]))
  );
create policy "Admins can remove members, owners can remove owners, anyone can leave"
  on public.organization_members for delete to authenticated
  using (
    user_id = (select auth.uid())
    or (
      organization_id = any ((select private.org_ids('admin'))::uuid[])
      and (role <> 'owner' or organization_id = any ((select private.org_ids('owner'))::uuid[]))
    )
  );
create policy "Server jobs can manage members"
  on public.organization_members for all to service_role
  using (true) with check (true);
