#!/bin/sh
# docker-compose's Kafka set-up steps, run in the apache/kafka image (it has keytool, no openssl).
#   init: once, as root: a CA and the broker's keystore (keytool), the CA for clients, the admin
#         client's properties, and the storage formatted with the SCRAM users.
#   acls: once the broker is healthy, as admin: each service's rights (as kafka_local/secure.py).
set -eu

SECRETS=/etc/kafka/secrets
CA_DIR=/etc/kafka/ca
DATA=/var/lib/kafka/data
MECHANISM=SCRAM-SHA-512
LOGIN=org.apache.kafka.common.security.scram.ScramLoginModule
BIN=/opt/kafka/bin

init() {
  umask 077
  if [ ! -f "$SECRETS/broker.p12" ]; then
    pass="$KAFKA_KEYSTORE_PASSWORD"
    keytool -genkeypair -alias ca -dname CN=orders-kafka-ca -ext bc:c -keyalg RSA -keysize 2048 \
      -validity 3650 -storetype PKCS12 -keystore "$SECRETS/ca.p12" -storepass "$pass"
    keytool -exportcert -rfc -alias ca -keystore "$SECRETS/ca.p12" -storepass "$pass" \
      -file "$SECRETS/ca.pem"
    keytool -genkeypair -alias broker -dname CN=kafka -keyalg RSA -keysize 2048 -validity 825 \
      -storetype PKCS12 -keystore "$SECRETS/broker.p12" -storepass "$pass"
    keytool -certreq -alias broker -keystore "$SECRETS/broker.p12" -storepass "$pass" \
      -file "$SECRETS/broker.csr"
    keytool -gencert -alias ca -keystore "$SECRETS/ca.p12" -storepass "$pass" -rfc -validity 825 \
      -ext SAN=dns:kafka,dns:localhost,ip:127.0.0.1 -ext EKU=serverAuth,clientAuth \
      -infile "$SECRETS/broker.csr" -outfile "$SECRETS/broker.pem"
    keytool -importcert -noprompt -alias ca -file "$SECRETS/ca.pem" \
      -keystore "$SECRETS/broker.p12" -storepass "$pass"
    keytool -importcert -alias broker -file "$SECRETS/broker.pem" \
      -keystore "$SECRETS/broker.p12" -storepass "$pass"
    keytool -importcert -noprompt -alias ca -file "$SECRETS/ca.pem" -storetype PKCS12 \
      -keystore "$SECRETS/truststore.p12" -storepass "$pass"
  fi
  # Only the CA certificate is shared with the services.
  install -m 0644 "$SECRETS/ca.pem" "$CA_DIR/ca.pem"
  cat > "$SECRETS/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=$MECHANISM
sasl.jaas.config=$LOGIN required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PKCS12
ssl.truststore.location=$SECRETS/truststore.p12
ssl.truststore.password=$KAFKA_KEYSTORE_PASSWORD
EOF
  if [ ! -f "$DATA/meta.properties" ]; then
    # The broker's own settings, as the image writes them from the kafka service's environment.
    env | sed -n 's/^KAFKA_\([A-Z0-9_]*\)=\(.*\)$/\1=\2/p' \
      | grep -v -e '^ADMIN_PASSWORD=' -e '^COMMAND_PASSWORD=' -e '^QUERY_PASSWORD=' \
        -e '^KEYSTORE_PASSWORD=' \
      | awk -F= '{ key = tolower($1); gsub("___", "-", key); gsub("__", "@", key);
                   gsub("_", ".", key); gsub("@", "_", key); sub("^[^=]*=", ""); print key "=" $0 }' \
      > /tmp/format.properties
    "$BIN/kafka-storage.sh" format -t "$CLUSTER_ID" -c /tmp/format.properties \
      --add-scram "$MECHANISM=[name=admin,password=$KAFKA_ADMIN_PASSWORD]" \
      --add-scram "$MECHANISM=[name=command,password=$KAFKA_COMMAND_PASSWORD]" \
      --add-scram "$MECHANISM=[name=query,password=$KAFKA_QUERY_PASSWORD]"
    rm -f /tmp/format.properties
  fi
  chown -R 1000:1000 "$SECRETS" "$DATA"
  chmod 0700 "$SECRETS"
  chmod 0755 "$CA_DIR"
}

acls() {
  admin="--bootstrap-server kafka:9092 --command-config $SECRETS/admin.properties"
  # shellcheck disable=SC2086 # $admin is several arguments
  "$BIN/kafka-acls.sh" $admin --add --allow-principal User:command \
    --operation Create --operation Describe --operation Write --topic "$ORDERS_TOPIC"
  # shellcheck disable=SC2086
  "$BIN/kafka-acls.sh" $admin --add --allow-principal User:query \
    --operation Read --operation Describe --topic "$ORDERS_TOPIC"
  # shellcheck disable=SC2086
  "$BIN/kafka-acls.sh" $admin --add --allow-principal User:query \
    --operation Read --group "$QUERY_CONSUMER_GROUP" --group "$QUERY_CONSUMER_GROUP-rebuild"
  # shellcheck disable=SC2086
  "$BIN/kafka-acls.sh" $admin --add --allow-principal User:query \
    --operation Create --operation Describe --operation Write --topic "$ORDERS_DLQ_TOPIC"
  # The query instances heartbeat into, and read, their membership topic.
  # shellcheck disable=SC2086
  "$BIN/kafka-acls.sh" $admin --add --allow-principal User:query --operation Create \
    --operation Describe --operation Read --operation Write --topic "$ORDERS_TOPIC.members"
}

"$@"
