package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/kura-cc/kura/party"
)

func newPartyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "party", Short: "Party identities: a signing key, a receiving key and a shareable card"}
	cmd.AddCommand(newPartyInitCmd(g), newPartyShowCmd())
	return cmd
}

func newPartyInitCmd(_ *globals) *cobra.Command {
	var out, kemName string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "init NAME",
		Short: "Create a party identity (private, 0600) and its public card",
		Long: `Create a party's Ed25519 signing key and HPKE receiving key in DIR/` + party.IdentityFile + ` (mode 0600;
keep it secret) and its public card in DIR/card.json (share it). Prints the card's fingerprint:
the others compare it out of band before trusting the card. Refuses to overwrite an identity.
--json prints {name, fingerprint, identity (the secret file), card (the file to share), kem}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usagef("-o DIR is required")
			}
			kem, err := party.ParseKEM(kemName)
			if err != nil {
				return usagef("--kem: %w", err)
			}
			id, err := party.Generate(args[0], kem)
			if err != nil {
				return usageError{err}
			}
			cardPath := filepath.Join(out, "card.json")
			if _, err := os.Lstat(cardPath); err == nil {
				return fmt.Errorf("%s already exists: choose another directory, or remove the old party first", cardPath)
			}
			if err := id.Save(out); err != nil {
				if errors.Is(err, os.ErrExist) {
					return fmt.Errorf("%s already exists: choose another directory, or remove the old party first", filepath.Join(out, party.IdentityFile))
				}
				return err
			}
			card, err := id.Card().Marshal()
			if err != nil {
				return err
			}
			f, err := os.OpenFile(cardPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
			if err == nil {
				err = errors.Join(writeAllTo(f, card), f.Close())
			}
			if err != nil {
				os.Remove(filepath.Join(out, party.IdentityFile))
				return fmt.Errorf("write card: %w", err)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (secret) and %s (share it)\n", filepath.Join(out, party.IdentityFile), cardPath)
			if asJSON {
				c := id.Card()
				return printJSON(cmd.OutOrStdout(), createdParty{Name: c.Name, Fingerprint: c.Fingerprint,
					Identity: filepath.Join(out, party.IdentityFile), Card: cardPath, KEM: c.ReceivingKey.KEM})
			}
			fmt.Fprintln(cmd.OutOrStdout(), id.Card().Fingerprint)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory for the identity and card (created 0700 if missing)")
	cmd.Flags().StringVar(&kemName, "kem", "x25519", "receiving key KEM: x25519 or mlkem768-x25519 (post-quantum hybrid)")
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}

// createdParty is what `kura party init --json` prints.
type createdParty struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"`
	Identity    string `json:"identity"`
	Card        string `json:"card"`
	KEM         string `json:"kem"`
}

// shownCard is what `kura party show --json` prints.
type shownCard struct {
	Name         string    `json:"name"`
	Fingerprint  string    `json:"fingerprint"`
	SigningKey   string    `json:"signing_key"`
	ReceivingKey string    `json:"receiving_key"`
	KEMID        uint16    `json:"kem_id"`
	CreatedAt    time.Time `json:"created_at"`
}

func writeAllTo(f *os.File, b []byte) error { _, err := f.Write(b); return err }

func newPartyShowCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show CARD",
		Short: "Check a party card and print its name, fingerprint and key types",
		Long: `Check a party card (known fields, key lengths, a fingerprint that matches) and print its name,
fingerprint and key types. --json prints {name, fingerprint, signing_key ("ed25519"),
receiving_key (the KEM: "x25519" or "mlkem768-x25519"), kem_id, created_at}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readInput("CARD", args[0])
			if err != nil {
				return err
			}
			c, err := party.ParseCard(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), shownCard{Name: c.Name, Fingerprint: c.Fingerprint, SigningKey: "ed25519",
					ReceivingKey: c.ReceivingKey.KEM, KEMID: c.ReceivingKey.KEMID, CreatedAt: c.CreatedAt.UTC()})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "name:          %s\nfingerprint:   %s\nsigning key:   ed25519\nreceiving key: %s (HPKE KEM 0x%04x, HKDF-SHA256, AES-256-GCM)\ncreated:       %s\n",
				c.Name, c.Fingerprint, c.ReceivingKey.KEM, c.ReceivingKey.KEMID, c.CreatedAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, jsonFlagHelp)
	return cmd
}
