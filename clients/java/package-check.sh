#!/usr/bin/env bash
# Packaging check of the Java client: installs dev.baton:baton-client:0.2.0 into the workspace
# Maven repository (<repo>/.cache/m2, or BATON_M2_REPO), then builds a scratch Maven project in
# `mktemp -d` (outside the repository) that depends on it, and runs its ten-line program against a
# live server: creates a customer and lists agents with an integration key.
#   BATON_SMOKE_TARGET=127.0.0.1:8800 BATON_SMOKE_INTEGRATION_KEY=bk_key_... clients/java/package-check.sh
# Offline (-o) first; online once only when a plugin is missing from the repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
repo="${BATON_M2_REPO:-$root/.cache/m2}"
target="${BATON_SMOKE_TARGET:?set BATON_SMOKE_TARGET (host:port of a live server)}"
key="${BATON_SMOKE_INTEGRATION_KEY:?set BATON_SMOKE_INTEGRATION_KEY}"
version=0.2.0

fail() { echo "package-check java: FAILED: $*" >&2; exit 1; }
"$here/sync-protos.sh" --check
scratch="$(mktemp -d)"
log="$scratch/build.log"
trap 'rm -rf "$scratch"' EXIT
mvnq() { mvn -B -q -Dmaven.repo.local="$repo" "$@" >"$log" 2>&1; }

# 1. The artifact, into the local repository (tests are run by smoke-all's java-unit step).
cd "$here"
if ! mvnq -o -DskipTests install && ! mvnq -DskipTests install; then cat "$log"; fail "mvn install"; fi
installed="$repo/dev/baton/baton-client/$version"
jar="$installed/baton-client-$version.jar"
[ -f "$jar" ] || fail "$jar not installed"
for class in dev/baton/v1/Event.class dev/baton/v1/HandoffServiceGrpc.class dev/baton/client/BatonClient.class; do
  unzip -l "$jar" "$class" >/dev/null || fail "$class missing from $jar"
done
grep -q "<name>Apache-2.0</name>" "$installed/baton-client-$version.pom" || fail "no Apache-2.0 license in the pom"

# 2. A scratch project outside the repository that only knows the coordinates.
mkdir -p "$scratch/app/src/main/java/example"
cat >"$scratch/app/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>example</groupId>
  <artifactId>baton-package-check</artifactId>
  <version>1</version>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <maven.compiler.release>17</maven.compiler.release>
  </properties>
  <dependencies>
    <dependency>
      <groupId>dev.baton</groupId>
      <artifactId>baton-client</artifactId>
      <version>$version</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin><artifactId>maven-resources-plugin</artifactId><version>3.3.1</version></plugin>
      <plugin><artifactId>maven-compiler-plugin</artifactId><version>3.13.0</version></plugin>
      <plugin><artifactId>maven-dependency-plugin</artifactId><version>3.8.1</version></plugin>
    </plugins>
  </build>
</project>
POM
cat >"$scratch/app/src/main/java/example/Main.java" <<'JAVA'
package example;

import dev.baton.client.*;
import dev.baton.v1.*;
import java.util.concurrent.TimeUnit;

public class Main {
  public static void main(String[] args) {
    try (BatonClient baton = BatonClient.builder(args[0]).plaintext().credentials(BatonCredentials.apiKey(args[1])).build()) {
      Customer c = baton.customers().withDeadlineAfter(10, TimeUnit.SECONDS).createCustomer(CreateCustomerRequest.newBuilder()
          .setCustomer(Customer.newBuilder().setName("Package check (java)")).build()).getCustomer();
      int agents = baton.agents().withDeadlineAfter(10, TimeUnit.SECONDS).listAgents(ListAgentsRequest.getDefaultInstance()).getAgentsCount();
      System.out.println("package-check java: created customer " + c.getId() + ", " + agents + " agent(s) listed");
    }
  }
}
JAVA
cd "$scratch/app"
build() { mvnq "$@" compile dependency:build-classpath -Dmdep.outputFile=classpath.txt -Dmdep.includeScope=runtime; }
if ! build -o && ! build; then cat "$log"; fail "the scratch project does not build"; fi
grep -q "baton-client-$version.jar" classpath.txt || fail "baton-client $version is not on the scratch classpath"
java -cp "target/classes:$(cat classpath.txt)" example.Main "$target" "$key" || fail "the program failed"
echo "package-check java: ok"
