-- A runner token speaks for the member who issued it. When that member leaves the
-- organization (removed by an admin, leaving on their own, deleted with their user), the
-- tokens they issued there are revoked in the same transaction, whichever path deleted
-- the membership (test_agents.py::test_a_members_runner_tokens_are_revoked_when_...).

create function private.revoke_departed_members_runner_tokens() returns trigger
  language plpgsql security definer
  set search_path = ''
  as $$
begin
  update public.agent_runner_tokens t
     set revoked_at = now()
    from departed d
   where t.organization_id = d.organization_id
     and t.created_by = d.user_id
     and t.revoked_at is null;
  return null;
end
$$;
revoke all on function private.revoke_departed_members_runner_tokens() from public;

-- Once per statement: deleting an organization removes all its members in one go.
create trigger organization_members_revoke_runner_tokens
  after delete on public.organization_members
  referencing old table as departed
  for each statement execute function private.revoke_departed_members_runner_tokens();

-- The trigger finds a member's live tokens by organization and issuer.
create index agent_runner_tokens_live_by_issuer_idx
  on public.agent_runner_tokens (organization_id, created_by)
  where revoked_at is null;

-- Deleting a user sets created_by to null (on delete set null), which may run before or
-- after the membership cascade: a token that loses its issuer is revoked on the spot.
create function private.revoke_orphaned_runner_token() returns trigger
  language plpgsql
  set search_path = ''
  as $$
begin
  new.revoked_at := coalesce(new.revoked_at, now());
  return new;
end
$$;
revoke all on function private.revoke_orphaned_runner_token() from public;
create trigger agent_runner_tokens_revoke_when_issuer_is_gone
  before update of created_by on public.agent_runner_tokens
  for each row when (old.created_by is not null and new.created_by is null)
  execute function private.revoke_orphaned_runner_token();

-- Who issued a token is the database's to say: a member issues tokens as themselves and
-- may change only a token's name and revoked_at, so no token is handed to someone who stays.
alter policy "Members can issue runner tokens" on public.agent_runner_tokens
  with check (
    organization_id = any ((select private.org_ids('member'))::uuid[])
    and created_by = (select auth.uid())
  );
revoke update on public.agent_runner_tokens from authenticated;
grant update (name, revoked_at) on public.agent_runner_tokens to authenticated;

-- Tokens whose issuer has already left stop working now too.
update public.agent_runner_tokens t
   set revoked_at = now()
 where t.revoked_at is null
   and t.created_by is not null
   and not exists (
     select 1 from public.organization_members m
      where m.organization_id = t.organization_id and m.user_id = t.created_by
   );

-- Live tokens issued before the default lifetime get it from now on: none lasts for ever.
update public.agent_runner_tokens
   set expires_at = now() + interval '90 days'
 where expires_at is null and revoked_at is null;
