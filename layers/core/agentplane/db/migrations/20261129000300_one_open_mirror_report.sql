-- At most one queued or running mirror report per connection, held by the database.
--
-- The nightly enqueue checked `not exists (an open report)` before inserting; two runs at
-- once (a retried schedule, a slow night) both saw none under READ COMMITTED and queued
-- the same connection twice. A partial unique index makes the second insert a conflict,
-- which the enqueue skips with ON CONFLICT DO NOTHING.

-- Duplicates that slipped in before: the oldest open report of a connection stays, the
-- later ones end as failed, saying why.
update public.mirror_reports r
   set status = 'failed',
       error = 'a duplicate of an earlier queued report of this connection',
       finished_at = now()
 where r.status in ('queued', 'running')
   and exists (
     select 1 from public.mirror_reports e
      where e.connection_id = r.connection_id
        and e.status in ('queued', 'running')
        and (e.created_at, e.id) < (r.created_at, r.id));

create unique index mirror_reports_one_open_per_connection
  on public.mirror_reports (connection_id)
  where status in ('queued', 'running');
