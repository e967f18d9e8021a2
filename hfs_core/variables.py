"""The environment variables hfs reads, named in one place (`hfs --help`, the README and
docs/cli.md list the same). A leaf: the listing commands import it without the configuration."""

CONFIG_ENV = "HFS_CONFIG"
PLUGINS_ENV = "HFS_PLUGINS"
DB_URL_ENV = "TIDB_DB_URL"
DB_URL_ENVS = ("HFS_USAGE_DB_URL", DB_URL_ENV)
"""The variables that name the usage database, the first set one winning (``TIDB_DB_URL``: keycycle's name)."""
STATE_URL_ENV = "HFS_STATE_URL"
STATE_SECRET_ENV = "HFS_STATE_SECRET"
DEBUG_ENV = "HFS_DEBUG"
ENVIRONMENT = (
    ("NUM_<P>", "how many keys provider P has (e.g. NUM_GROQ=2)"),
    ("<P>_API_KEY_<i>", "key i of provider P, from 1 (e.g. GROQ_API_KEY_1)"),
    (DB_URL_ENVS[0], "the usage database, a SQLAlchemy URL"),
    (DB_URL_ENV, f"the older name of {DB_URL_ENVS[0]} (keycycle's), used when that is not set"),
    (STATE_URL_ENV, "share every pool through this Redis (redis://, rediss://, unix://)"),
    (STATE_SECRET_ENV, "key of the hash that names API keys in Redis (the same on every process)"),
    (PLUGINS_ENV, "load only these plugins, e.g. groq,gemini"),
    (CONFIG_ENV, "the configuration file, in place of the hfs.toml searched for"),
    (DEBUG_ENV, "1: tracebacks"),
)
"""Every variable hfs reads and what it does, as `hfs --help` lists them (the README and docs/cli.md name
each too)."""
