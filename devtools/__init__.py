"""What the tests and the benchmarks share: the services run as real processes, the environment
they are given, and in-memory fakes of the services' ports. Development only: never shipped."""
