# Postfix relaying a support domain to mailgate, for docker/compose.yaml:
# the MX takes mail from the internet, queues it, and hands it to mailgate
# over SMTP; while mailgate is down or answers 452 the mail waits in
# Postfix's queue. Only recipients mailgate accepts are taken (no backscatter).
FROM debian:12
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# Keep relay_recipient_maps in step with mailgate's smtp.accept. No chroot:
# the smtp client must read the container's resolv.conf to find "mailgate";
# the log goes to stdout (Debian's master.cf has the postlog service).
RUN postconf -e \
      'myhostname = mx.example.com' \
      'mydestination =' \
      'inet_interfaces = all' \
      'inet_protocols = ipv4' \
      'relay_domains = example.com, help.example.com' \
      'relay_recipient_maps = inline:{ support@example.com = ok, @help.example.com = ok }' \
      'transport_maps = inline:{ example.com = smtp:[mailgate]:2525, help.example.com = smtp:[mailgate]:2525 }' \
      'smtpd_recipient_restrictions = reject_unauth_destination' \
      'maillog_file = /dev/stdout' \
 && postconf -F '*/*/chroot = n' \
 && postfix check
EXPOSE 25
CMD ["postfix", "start-fg"]
