# raftkv's image: the static binary, the hostfiles (hostfile.5.json: test_grow_shrink) and the data files, nothing else.
#
# No base image can be pulled on the machines this project is built on, so the
# binary is built on the host (`make image` runs `CGO_ENABLED=0 go build`) and
# copied into an empty image. There is no shell inside: run `docker exec r0
# /raftkv status` to look around.
FROM scratch
COPY raftkv hostfile.json hostfile.5.json datafile.0.txt datafile.1.txt /
WORKDIR /
# The nodes keep their state in /persistence (docker-compose.yaml bind-mounts
# ./persistence there).
ENTRYPOINT ["/raftkv"]
CMD ["--help"]
