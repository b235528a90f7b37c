-- user_keys names its ciphertext `key_ciphertext`, as the Cencori seed does. The
-- updated_at trigger's column list follows the rename by itself.
-- Pinned by tests/integration/test_seed_conformance.py.

alter table public.user_keys rename column ciphertext to key_ciphertext;
