import Foundation

extension DatabaseStore: RevocationListStore {
    /// Increments and returns the issuer's CRL number (1 for its first CRL), atomically.
    public func nextCRLNumber(issuer: String) async throws -> Int64 {
        try await writeAtomic { db in
            try db.execute(
                sql: """
                    INSERT INTO issuers (issuer, last_crl_number) VALUES (?, 1)
                    ON CONFLICT (issuer) DO UPDATE SET last_crl_number = issuers.last_crl_number + 1
                    """,
                arguments: [issuer])
            return try db.fetchScalar(Int64.self, sql: "SELECT last_crl_number FROM issuers WHERE issuer = ?", arguments: [issuer])
                ?? 1
        }
    }

    /// Stores the CRL and deletes the issuer's CRLs numbered five or more below it.
    public func saveCRL(_ crl: PublishedCRL) async throws {
        try await writeAtomic { db in
            try db.execute(
                sql: """
                    INSERT INTO crls (issuer, number, this_update, next_update, der, entry_count, revision)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    crl.issuer, crl.number, crl.thisUpdate.unixSeconds, crl.nextUpdate.unixSeconds, Data(crl.der),
                    crl.entryCount, crl.revision,
                ])
            // Keep a short history; relying parties only ever need the newest.
            try db.execute(
                sql: "DELETE FROM crls WHERE issuer = ? AND number <= ?", arguments: [crl.issuer, crl.number - 5])
        }
    }

    /// The issuer's CRL with the highest number, or `nil`.
    public func latestCRL(issuer: String) async throws -> PublishedCRL? {
        try await read { db in
            guard
                let row = try db.fetchOne(sql: "SELECT * FROM crls WHERE issuer = ? ORDER BY number DESC LIMIT 1", arguments: [issuer])
            else { return nil }
            let der: Data = row["der"]
            return PublishedCRL(
                issuer: row["issuer"], number: row["number"], thisUpdate: Date(unixSeconds: row["this_update"]),
                nextUpdate: Date(unixSeconds: row["next_update"]), der: Array(der), entryCount: row["entry_count"],
                revision: row["revision"])
        }
    }
}

extension DatabaseStore {
    /// The issuer's revocation counter, bumped by every revocation, hold or release; 0 before the first.
    public func revocationRevision(issuer: String) async throws -> Int64 {
        try await read { db in
            try db.fetchScalar(Int64.self, sql: "SELECT revocation_revision FROM issuers WHERE issuer = ?", arguments: [issuer])
                ?? 0
        }
    }

    /// Counts a revocation against the issuer, inside the revoking transaction; returns the new revision.
    static func bumpRevocationRevision(issuer: String, in db: any SQLSession) throws -> Int64 {
        try db.fetchScalar(
            Int64.self,
            sql: """
                INSERT INTO issuers (issuer, revocation_revision) VALUES (?, 1)
                ON CONFLICT (issuer) DO UPDATE SET revocation_revision = issuers.revocation_revision + 1
                RETURNING revocation_revision
                """,
            arguments: [issuer]) ?? 1
    }
}
