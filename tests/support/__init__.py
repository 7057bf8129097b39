"""Helpers the tests share: the stack they run against, seed data, local servers that speak the
providers' and receivers' protocols, worker processes, TCP proxies."""
