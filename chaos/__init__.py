"""The chaos run (`make chaos`, `python -m chaos`): the real broker and services under a seeded
schedule of crashes, network faults, a full disk and bad records, and a client that proves no
acknowledged order is lost or counted twice. Development only: never shipped."""
