/**
 * nginx as a lab real server: a throw-away configuration per server in a directory under /tmp,
 * started in the foreground (the lab kills it with its namespace).
 */
import { mkdirSync, writeFileSync } from "node:fs";

export interface NginxOptions {
  /** Directory for the configuration, pid, logs and temp files (created). */
  dir: string;
  /** Name the server answers with. */
  name: string;
  /** Plain HTTP port. */
  port?: number;
  /** Port that expects the PROXY protocol (v1 or v2) and logs `$proxy_protocol_addr`. */
  proxyPort?: number;
  /** A file served at /big (for byte-exact transfers). */
  bigFile?: string;
}

/** Write nginx.conf for one lab server and return its path. Access log: DIR/access.log. */
export function nginxConf(o: NginxOptions): string {
  mkdirSync(o.dir, { recursive: true });
  const d = o.dir;
  const big = o.bigFile ? `location = /big { alias ${o.bigFile}; }` : "";
  const servers: string[] = [];
  if (o.port) {
    servers.push(`server { listen ${o.port} reuseport; keepalive_requests 1000000; ${big}
      location / { return 200 "${o.name}\\n"; } }`);
  }
  if (o.proxyPort) {
    servers.push(`server { listen ${o.proxyPort} proxy_protocol; access_log ${d}/access.log pp; ${big}
      location / { return 200 "${o.name} $proxy_protocol_addr:$proxy_protocol_port\\n"; } }`);
  }
  const conf = `${d}/nginx.conf`;
  writeFileSync(
    conf,
    `worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  log_format pp '$proxy_protocol_addr $remote_addr "$request" $status';
  client_body_temp_path ${d}; proxy_temp_path ${d}; fastcgi_temp_path ${d}; uwsgi_temp_path ${d}; scgi_temp_path ${d};
  ${servers.join("\n  ")}
}
`,
  );
  return conf;
}
