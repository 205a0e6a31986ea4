DROP FUNCTION IF EXISTS sf_member_id(uuid, integer);
DROP FUNCTION IF EXISTS sf_uuid7();
