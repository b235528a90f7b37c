-- Memory decay (issue 14.5): a forgetting curve computed when read, reinforcement on use,
-- a nightly archive step that reads only what crosses the threshold, and full-text recall.
-- Formula and parameters: layers/core/agentplane/memory/decay.py, docs/architecture.md.

-- Every node has been "used" at least when it was made, so the curve always has an origin.
update public.memory_nodes set last_used_at = created_at where last_used_at is null;
alter table public.memory_nodes
  alter column last_used_at set default now(),
  alter column last_used_at set not null,
  add column stability_seconds double precision not null default 604800
    check (stability_seconds > 0),
  add column reinforcements integer not null default 0 check (reinforcements >= 0),
  add column archived_at timestamptz,
  -- When the decayed strength falls to private.memory_fade_threshold(); kept by the
  -- trigger below, so the archive step finds what crossed through an index.
  add column fades_at timestamptz;

-- decayed = strength * exp(-(at - last_used_at) / stability); no decay before last use;
-- 0 once the exponent passes -700 (exp() would raise on underflow, not return 0).
-- Neither `strict` nor `set search_path`, either of which would stop it being inlined
-- (about 8x slower per row, docs/architecture.md); it calls only pg_catalog.
create function private.decayed_strength(
  strength double precision,
  last_used_at timestamptz,
  stability_seconds double precision,
  at timestamptz
) returns double precision
  language sql immutable parallel safe
  return case
    when -greatest(0, extract(epoch from (at - last_used_at))::double precision)
         / stability_seconds < -700 then 0
    else strength * exp(
      -greatest(0, extract(epoch from (at - last_used_at))::double precision) / stability_seconds)
  end;

-- The threshold fades_at is computed for (memory/decay.py FADE_THRESHOLD says the same).
create function private.memory_fade_threshold() returns double precision
  language sql immutable parallel safe
  return 0.05;

-- fades_at = last_used_at + stability * ln(strength / threshold): the moment the curve
-- reaches the threshold (at once, for a node no stronger than it).
create function private.memory_nodes_set_fades_at() returns trigger
  language plpgsql set search_path = '' as $$
begin
  new.fades_at := new.last_used_at + make_interval(secs => new.stability_seconds
    * ln(greatest(new.strength::double precision, private.memory_fade_threshold())
         / private.memory_fade_threshold()));
  return new;
end
$$;
create trigger memory_nodes_set_fades_at
  before insert or update of strength, last_used_at, stability_seconds
  on public.memory_nodes
  for each row execute function private.memory_nodes_set_fades_at();

update public.memory_nodes set stability_seconds = stability_seconds;  -- fill fades_at
alter table public.memory_nodes alter column fades_at set not null;

-- The archive step: `fades_at <= now()` among live nodes, oldest first
-- (tests/integration/test_memory_decay.py counts what it touches).
create index memory_nodes_fades_at_idx on public.memory_nodes (fades_at)
  where archived_at is null;

-- Recall: to_tsvector('simple', label || ' ' || content) @@ plainto_tsquery(...).
create index memory_nodes_search_idx on public.memory_nodes
  using gin (to_tsvector('simple'::regconfig, label || ' ' || content))
  where archived_at is null;

revoke all on function private.decayed_strength(double precision, timestamptz, double precision, timestamptz),
  private.memory_fade_threshold(), private.memory_nodes_set_fades_at() from public;
grant execute on function
  private.decayed_strength(double precision, timestamptz, double precision, timestamptz),
  private.memory_fade_threshold(), private.memory_nodes_set_fades_at()
  to authenticated, service_role;
