"""Security shared by the Kafka, text and HTTP listeners: principals, authentication
(SASL PLAIN / SCRAM-SHA-256/512, TLS client certificates) and, later, authorization.

Modules: ``scram`` (RFC 5802 exchange and credentials), ``users`` (the users file),
``sasl`` (one connection's authentication state), ``tls`` (SSL contexts),
``listeners`` (Kafka-style listener specs: ``SASL_SSL://host:port``).
"""
